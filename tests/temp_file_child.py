"""A training process that stops half-way through its first checkpoint write, to be killed.

Usage: python temp_file_child.py {model_checkpoint|backup} FOLDER MARKER. Once half of the
first chunk is in the temp file, MARKER is written and the process sleeps until killed.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

import hookline
from hookline.callbacks import BackupAndRestore, ModelCheckpoint
from hookline.files import atomic

kind, folder, marker = sys.argv[1:4]
real_write_all = atomic._write_all


def stop_half_way(handle: int, chunk: bytes | bytearray | memoryview) -> None:
    view = memoryview(chunk).cast("B")
    real_write_all(handle, view[: len(view) // 2])
    os.fsync(handle)
    Path(marker).write_text(str(os.getpid()))
    time.sleep(600)  # the test kills us here


atomic._write_all = stop_half_way
callback = (ModelCheckpoint(dirpath=folder, filename="m-{epoch}") if kind == "model_checkpoint"
            else BackupAndRestore(folder))
x, y = torch.randn(32, 256), torch.randn(32, 256)
hookline.Trainer(torch.nn.Linear(256, 256), loss="mse", train_data=(x, y), batch_size=16,
                 epochs=1, callbacks=[callback], default_callbacks=False, verbose=0,
                 device="cpu", seed=0).fit()
