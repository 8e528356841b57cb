"""Integrations with tracking tools; each imports its library lazily (install the extra).

The classes are loaded on first access (``from hookline.loggers import TensorBoard``), and the
tracking library itself only when a run starts, so ``import hookline.loggers`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hookline.loggers.mlflow import MLflowLogger
    from hookline.loggers.optuna import OptunaPruning
    from hookline.loggers.plot_results import PlotResults
    from hookline.loggers.tensorboard import TensorBoard
    from hookline.loggers.wandb import WandbLogger

# public name -> the submodule defining it
_LAZY: dict[str, str] = {
    "MLflowLogger": "hookline.loggers.mlflow",
    "OptunaPruning": "hookline.loggers.optuna",
    "PlotResults": "hookline.loggers.plot_results",
    "TensorBoard": "hookline.loggers.tensorboard",
    "WandbLogger": "hookline.loggers.wandb",
}

__all__ = ["MLflowLogger", "OptunaPruning", "PlotResults", "TensorBoard", "WandbLogger"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hookline.loggers' has no attribute {name!r}; the "
                             f"loggers are {sorted(_LAZY)}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
