"""OnExceptionCheckpoint: when training dies of an exception, Ctrl-C or SIGTERM, save it."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Literal

import torch

from hookline.callback import Callback
from hookline.checkpoint import build_checkpoint, remove_stale_temps, write_checkpoint
from hookline.options import check_save_dir
from hookline.rng import get_rng_state

__all__ = ["OnExceptionCheckpoint"]

_TRAINING_PHASES = ("train", "epoch_end", "epoch_done")


class OnExceptionCheckpoint(Callback):
    """Write a resumable checkpoint when an exception escapes ``fit`` (Lightning's name).

    It fires at ``on_exception``: for errors, KeyboardInterrupt and SIGTERM (which ``fit`` turns
    into ``hookline.engine.base.Terminated``). The file is written synchronously and atomically
    before the exception goes on. Continue with ``Trainer(resume="<dirpath>/<filename>.ckpt")``
    or ``resume=True`` (its folder is searched).

    The position saved is the end of the last finished batch, with the random generators as
    they were there. The resume is exact (bitwise equal to an uninterrupted run) when the
    exception came outside an optimizer step and, with gradient accumulation, at an
    accumulation boundary; otherwise the checkpoint is marked inexact and resuming warns.
    Nothing is written when the exception came before training started (set-up, a resume).

    Args:
        dirpath: the folder of the checkpoint.
        filename: its name; ``.ckpt`` is added unless it has a suffix.
        rng: which generator states are copied at every batch boundary. ``"torch"`` (default;
            ~1 us per batch, no device sync) is exact when data loading draws only from torch
            (dropout, torch transforms, a DataLoader's shuffle); ``"all"`` (~50 us per batch)
            also copies Python's ``random`` and NumPy's generator, for datasets that augment
            with them in the main process. Every generator is copied at each epoch start.

    Example::

        Trainer(..., callbacks=[OnExceptionCheckpoint("runs/crash")]).fit()
        # after a crash: Trainer(..., resume="runs/crash/on_exception.ckpt").fit()
    """

    order = -100  # first at on_exception, before clean-ups that might fail
    on_error = "raise"
    rank_zero_only = True  # in a distributed run one process writes (or prints)

    def __init__(self, dirpath: str | os.PathLike, filename: str = "on_exception", *,
                 rng: Literal["torch", "all"] = "torch") -> None:
        if not isinstance(dirpath, (str, os.PathLike)) or not str(dirpath):
            raise TypeError(f"OnExceptionCheckpoint(dirpath=...) must be a folder path, got "
                            f"{dirpath!r}")
        if not isinstance(filename, str) or not filename or "/" in filename:
            raise ValueError(f"OnExceptionCheckpoint(filename={filename!r}) must be a plain "
                             f"file name such as 'on_exception'")
        if rng not in ("torch", "all"):
            raise ValueError(f"OnExceptionCheckpoint(rng={rng!r}) must be 'torch' or 'all'")
        # now, not at the crash it exists for, where a write error could only be a note
        check_save_dir(dirpath, "OnExceptionCheckpoint", "dirpath")
        self.rng = rng
        self.dirpath = Path(dirpath)
        self.filename = filename if Path(filename).suffix else f"{filename}.ckpt"
        self._epoch_rng: dict[str, Any] | None = None
        self._batch_rng: Any = None
        self._step = 0
        self.saved: Path | None = None

    @property
    def path(self) -> Path:
        return self.dirpath / self.filename

    @property
    def checkpoint_dir(self) -> Path:
        """The folder ``Trainer(resume=True)`` also searches."""
        return self.dirpath

    @property
    def state_key(self) -> str:
        return f"OnExceptionCheckpoint[{self.path}]"

    def on_train_start(self, trainer: Any) -> None:
        remove_stale_temps(self.path)  # left by a process killed while writing this file

    def on_train_epoch_start(self, trainer: Any) -> None:
        self._epoch_rng, self._batch_rng, self._step = get_rng_state(), None, trainer.step

    def on_train_batch_end(self, trainer: Any) -> None:
        self._batch_rng = get_rng_state() if self.rng == "all" else torch.get_rng_state()
        self._step = trainer.step

    def _rng_at_boundary(self, trainer: Any) -> dict[str, Any] | None:
        """The generator states at the position saved (None: as they are now)."""
        if trainer.phase == "epoch_done":
            return None
        if self._batch_rng is None:  # no batch of this epoch finished in this process
            return self._epoch_rng if trainer.phase == "train" else None
        if self.rng == "all":
            return self._batch_rng  # type: ignore[no-any-return]
        return {**get_rng_state(), "torch": self._batch_rng}

    def on_exception(self, engine: Any) -> None:
        if getattr(engine, "phase", None) not in _TRAINING_PHASES:
            return  # not inside Trainer.fit's epochs: nothing new to save
        trainer = engine
        exact, notes = True, []
        in_batch = trainer.phase == "train" and not (trainer.stop or trainer.skip_rest_of_epoch)
        if in_batch:
            done = len(trainer.epoch_losses)
            if trainer.step != self._step:
                exact = False
                notes.append(f"the exception came after the optimizer step of batch {done}; "
                             f"that batch is trained again")
            if done % trainer.args.accumulate:
                exact = False
                notes.append("the exception came mid-way through gradient accumulation; the "
                             "accumulated gradients are dropped")
        payload = build_checkpoint(trainer, rng=self._rng_at_boundary(trainer),
                                   keep_grads=not in_batch, exact=exact, note="; ".join(notes))
        self.saved = write_checkpoint(payload, self.path)
        error = engine.exception
        print(f"hookline: {type(error).__name__} during training; saved {self.saved} "
              f"(resume with Trainer(..., resume={str(self.saved)!r}))", file=sys.stderr)
