"""A model handed over inside a wrapper: ``torch.compile``, ``nn.DataParallel``, DDP.

The engine keeps the plain module as ``trainer.model``, so checkpoints, weights and exports
hold its own parameter names (no ``_orig_mod.`` or ``module.``) and load into a model wrapped
or not. It trains through the user's wrapper where that wrapper still means something:

- ``torch.compile(model)`` and ``nn.DataParallel(model)`` (in either order): the steps call
  the wrapper, as the user's own loop would.
- ``DistributedDataParallel(model)``: dropped. Under torchrun the engine wraps the plain
  module in its own DDP (wrapping the user's would register a second gradient reducer on
  the same parameters); outside it there is nothing to reduce. A compile among the wrappers
  is applied again around what the engine calls.
- ``nn.DataParallel`` under torchrun is dropped too: each rank drives one device there.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from torch.nn.parallel import DistributedDataParallel

__all__ = ["Unwrapped", "unwrap"]


@dataclass(frozen=True)
class Unwrapped:
    """What ``unwrap`` found: the plain module and how the user meant it to run."""

    plain: nn.Module
    forward: nn.Module | None  # the user's wrapper to train through (None: the plain module)
    compiled: bool  # a torch.compile wrapper was among the layers


def unwrap(model: nn.Module) -> Unwrapped:
    """Peel compile, DataParallel and DDP layers off ``model`` down to the plain module."""
    inner, compiled, ddp = model, False, False
    while True:
        original = getattr(inner, "_orig_mod", None)
        if isinstance(original, nn.Module):  # torch.compile's OptimizedModule
            inner, compiled = original, True
        elif isinstance(inner, DistributedDataParallel):
            inner, ddp = inner.module, True
        elif isinstance(inner, nn.DataParallel):
            inner = inner.module
        else:
            break
    kept = inner is not model and not ddp
    return Unwrapped(inner, model if kept else None, compiled)
