"""The callbacks every Trainer gets unless ``default_callbacks=False``: History, progress and,
at ``verbose=2``, the model summary."""

from __future__ import annotations

from types import SimpleNamespace

from hookline.callback import Callback
from hookline.callbacks.history import History
from hookline.callbacks.model_summary import ModelSummary
from hookline.callbacks.progress_bar import ProgressBar

__all__ = ["default_callbacks"]


def default_callbacks(args: SimpleNamespace) -> list[Callback]:
    """History (always), a progress bar when ``args.verbose`` is not 0, and the model's
    summary at fit start when it is 2."""
    callbacks: list[Callback] = [History()]
    if args.verbose:
        callbacks.append(ProgressBar(verbose=args.verbose))
    if args.verbose == 2:
        callbacks.append(ModelSummary())
    return callbacks
