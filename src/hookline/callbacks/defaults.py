"""The callbacks every Trainer gets unless ``default_callbacks=False``: History and progress."""

from __future__ import annotations

from types import SimpleNamespace

from hookline.callback import Callback
from hookline.callbacks.history import History
from hookline.callbacks.progress_bar import ProgressBar

__all__ = ["default_callbacks"]


def default_callbacks(args: SimpleNamespace) -> list[Callback]:
    """History (always), and a progress bar when ``args.verbose`` is not 0."""
    callbacks: list[Callback] = [History()]
    if args.verbose:
        callbacks.append(ProgressBar(verbose=args.verbose))
    return callbacks
