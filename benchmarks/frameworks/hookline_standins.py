"""Stand-ins for hookline's built-in callbacks, used only while the built-ins are missing.

They do what the "typical" variant asks of every framework: early stopping on val_loss,
a checkpoint of the best model after each validation, every step's loss in a CSV file. The
CSV stand-in keeps the per-step losses as tensors and writes them once per epoch, so it adds
no host sync per step. Delete this file once hookline.callbacks ships all three.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch

import hookline


class EarlyStopping(hookline.Callback):
    def __init__(self, monitor: str = "val_loss", patience: int = 0) -> None:
        self.monitor, self.patience = monitor, patience

    def on_train_start(self, trainer) -> None:
        self.best, self.wait = float("inf"), 0

    def on_fit_epoch_end(self, trainer) -> None:
        value = trainer.metrics[self.monitor]
        if value < self.best:
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait > self.patience:
            trainer.stop = True


class ModelCheckpoint(hookline.Callback):
    def __init__(self, dirpath: Path, monitor: str = "val_loss", save_top_k: int = 1) -> None:
        self.path, self.monitor = Path(dirpath) / "best.pt", monitor

    def on_train_start(self, trainer) -> None:
        self.best = float("inf")

    def on_fit_epoch_end(self, trainer) -> None:
        value = trainer.metrics[self.monitor]
        if value < self.best:
            self.best = value
            torch.save(trainer.model.state_dict(), self.path)


class CSVLogger(hookline.Callback):
    def __init__(self, filename: Path) -> None:
        self.filename = filename

    def on_train_start(self, trainer) -> None:
        self.file = open(self.filename, "w", newline="")
        self.writer = csv.writer(self.file)
        self.pending: list[torch.Tensor] = []
        self.first_step = 1

    def on_train_batch_end(self, trainer) -> None:
        self.pending.append(trainer.loss.detach())

    def on_train_epoch_end(self, trainer) -> None:
        # One sync per epoch instead of one per step.
        values = torch.stack(self.pending).tolist() if self.pending else []
        self.writer.writerows(enumerate(values, start=self.first_step))
        self.first_step += len(values)
        self.pending = []

    def on_train_end(self, trainer) -> None:
        self.file.close()
