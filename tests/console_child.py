"""Trains with a progress bar on the terminal tmux gives it, pausing where the test looks.

``python console_child.py FLAVOUR MARKER_DIR``: after half of epoch 1's batches it writes
``MARKER_DIR/train`` and waits for ``MARKER_DIR/go-train``; halfway through the first
validation it does the same with ``val``. The test captures the pane at both moments.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

import hookline
from hookline.callbacks import ProgressBar
from hookline.testing import tiny_data, tiny_model


def pause(folder: Path, name: str) -> None:
    (folder / name).touch()
    deadline = time.monotonic() + 60
    while not (folder / f"go-{name}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def main(flavour: str, folder: Path) -> None:
    seen = {"train": 0, "val": 0}

    def step(trainer: hookline.Trainer, batch: tuple) -> dict:
        x, y = batch
        logits = trainer.model(x)
        time.sleep(0.01)
        return {"ce": torch.nn.functional.cross_entropy(logits, y),
                "l2": 1e-2 * logits.pow(2).mean()}

    def train_batch(trainer: hookline.Trainer) -> None:
        seen["train"] += 1
        if seen["train"] == 10:
            time.sleep(0.2)  # past the bar's refresh: the running loss is drawn
            pause(folder, "train")

    def val_batch(validator: hookline.Validator) -> None:
        seen["val"] += 1
        if seen["val"] == 3:
            pause(folder, "val")

    trainer = hookline.Trainer(
        tiny_model(), training_step=step, validation_step=step, train_data=tiny_data(320),
        val_data=tiny_data(64, seed=1), batch_size=16, epochs=2, seed=0, device="cpu",
        default_callbacks=False,
        callbacks=[ProgressBar(verbose=1, flavour=flavour, refresh_s=0.1)])
    trainer.add_callback("on_train_batch_end", train_batch)
    trainer.add_callback("on_val_batch_end", val_batch)
    trainer.fit()
    (folder / "done").touch()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
