"""ModelSummary: print the model's layers, output shapes and parameter counts at fit start."""

from __future__ import annotations

import sys
from typing import IO, Any

from hookline.callback import Callback

__all__ = ["ModelSummary"]


class ModelSummary(Callback):
    """Print ``trainer.summary()`` when training starts (Lightning's ModelSummary; Keras
    users call ``model.summary()``). ``Trainer(verbose=2)`` adds one by default.

    The output shapes come from one forward pass on the first sample of the training data,
    taken without disturbing the run (see ``hookline.summary``); when that is not possible
    they are "?". It prints at ``on_train_start``, after set-up and any resume, on rank 0.

    Args:
        max_depth: how many levels of submodules to list (1: the model's children).
        file: where to print (default: standard output).
    """

    order = 95  # beside the progress bar
    on_error = "warn"  # a summary must never stop a run
    rank_zero_only = True

    def __init__(self, max_depth: int = 1, file: IO[str] | None = None) -> None:
        if isinstance(max_depth, bool) or not isinstance(max_depth, int) or max_depth < 1:
            raise ValueError(f"ModelSummary(max_depth={max_depth!r}) is not allowed; "
                             f"max_depth must be an integer >= 1")
        self.max_depth = max_depth
        self.file = file

    def on_train_start(self, trainer: Any) -> None:
        from hookline.summary import trainer_summary
        print(trainer_summary(trainer, max_depth=self.max_depth),
              file=self.file or sys.stdout, flush=True)
