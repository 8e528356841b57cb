"""Every step's loss to a CSV file, for hookline's typical variant.

hookline's built-in CSVLogger writes one row per epoch (as Keras' does), so the per-step log
is this small user callback, as Keras gets one too. The engine already keeps each step's
loss (``trainer.step_losses`` reads them as one tensor), so the callback needs no per-step
hook: it writes the epoch's rows when the epoch ends, one host sync per epoch instead of one
per step.
"""

from __future__ import annotations

import csv
from pathlib import Path

import hookline


class StepCSVLogger(hookline.Callback):
    def __init__(self, filename: Path) -> None:
        self.filename = filename

    def on_train_start(self, trainer) -> None:
        self.file = open(self.filename, "w", newline="")  # noqa: SIM115 - closed when training ends
        self.writer = csv.writer(self.file)
        self.next_step = 1

    def on_train_epoch_end(self, trainer) -> None:
        losses = trainer.step_losses
        values = losses.tolist() if losses is not None else []
        self.writer.writerows(enumerate(values, start=self.next_step))
        self.next_step += len(values)

    def on_train_end(self, trainer) -> None:
        self.file.close()
