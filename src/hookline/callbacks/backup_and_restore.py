"""BackupAndRestore: back a run up as it trains; after a crash, the same script continues it."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Literal

from hookline import distributed, rank_backups
from hookline.callback import Callback
from hookline.checkpoint import CheckpointWriter, build_checkpoint, remove_stale_temps
from hookline.options import check_save_dir

__all__ = ["BackupAndRestore"]


class BackupAndRestore(Callback):
    """Keras' ``BackupAndRestore``: full checkpoints in ``backup_dir``, resumed automatically.

    When a fit starts and ``backup_dir`` holds a backup (the run was interrupted: a crash, a
    kill, a preempted job), training continues from it exactly, mid-epoch included: weights,
    optimizer, random generators, data position and every callback's state are restored. When
    the fit ends normally the backups are deleted (``delete_checkpoint=True``), so running the
    script again starts a new run.

    Args:
        backup_dir: folder of the backups: ``latest.ckpt`` and the one before, kept as
            ``previous.ckpt`` in case the latest is damaged.
        save_freq: ``"epoch"`` (after every epoch) or N (after every N training batches).
        delete_checkpoint: delete the backups when the fit ends without an exception.
        background: write in a background thread (the loop only waits while the state's
            tensors are copied to memory; the next backup waits for the previous write).
        on_write_error: a failed write (disk full) leaves the previous backup intact and is
            reported at the next backup or when the fit ends: ``"raise"`` stops training,
            ``"warn"`` warns and trains on.
        auto_resume: ``True`` (Keras): a fit that finds backups continues from them.
            ``False``: backups are only written, and a fit continues from them when asked
            (``Trainer(resume=True)`` searches ``backup_dir``); a fit that is not resuming
            deletes the old backups when it starts, so they are never taken for its own.
            With ``delete_checkpoint=False`` this lets a finished run be extended later
            (``resume=True`` with more ``epochs``), as ``hookline train`` does.

    It runs late (order 200) so a backup holds what every other callback did at the same
    event. An explicit ``Trainer(resume=...)`` takes precedence over its backups.

    Under torchrun every rank backs itself up in ``backup_dir/rank<N>/`` (its own random
    generators, losses and metric states), and at a restart the ranks agree on the newest
    backup of one run they all hold: a kill can land while some ranks are still writing the
    last one. A run that comes back with another number of ranks (or without torchrun)
    continues from rank 0's epoch-boundary backup; the old layout's files are removed once
    every rank holds its own backup (``hookline.rank_backups``; docs/distributed.md).

    Example::

        Trainer(model, loss="cross_entropy", train_data=(x, y), epochs=100,
                callbacks=[BackupAndRestore("runs/backup", save_freq=500)]).fit()
    """

    order = 200
    on_error = "raise"  # a backup guards the run: failing silently would lose it

    def __init__(self, backup_dir: str | os.PathLike, save_freq: Literal["epoch"] | int = "epoch",
                 delete_checkpoint: bool = True, *, background: bool = True,
                 on_write_error: Literal["raise", "warn"] = "raise",
                 auto_resume: bool = True) -> None:
        if not isinstance(backup_dir, (str, os.PathLike)) or not str(backup_dir):
            raise TypeError(f"BackupAndRestore(backup_dir=...) must be a folder path, got "
                            f"{backup_dir!r}")
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(
                save_freq, int) or save_freq < 1):
            raise ValueError(f"BackupAndRestore(save_freq={save_freq!r}) is not allowed; use "
                             f"'epoch' or a number of training batches >= 1")
        check_save_dir(backup_dir, "BackupAndRestore", "backup_dir")
        self.backup_dir = Path(backup_dir)
        self.save_freq = save_freq
        self.delete_checkpoint = bool(delete_checkpoint)
        self.auto_resume = bool(auto_resume)
        self._writer = CheckpointWriter(background=background, on_error=on_write_error)
        self._batches = 0
        self._carry: rank_backups.Resume | None = None  # see _first_own_backup

    @property
    def checkpoint_dir(self) -> Path:
        """The folder ``Trainer(resume=True)`` also searches: this rank's under torchrun."""
        if distributed.is_distributed():
            return self.backup_dir / f"rank{distributed.rank()}"
        return self.backup_dir

    @property
    def latest(self) -> Path:
        return self.checkpoint_dir / "latest.ckpt"

    @property
    def previous(self) -> Path:
        return self.checkpoint_dir / "previous.ckpt"

    @property
    def state_key(self) -> str:
        return f"BackupAndRestore[{self.backup_dir}]"

    def state_dict(self) -> dict[str, Any]:
        return {"batches": self._batches} if self.save_freq != "epoch" else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._batches = int(state.get("batches", 0))

    def hookline_handlers(self) -> dict[str, Any]:
        handlers = {"on_pretrain_routine_start": self.on_pretrain_routine_start,
                    "on_train_end": self.on_train_end, "teardown": self.teardown}
        if self.save_freq == "epoch":
            handlers["on_fit_epoch_end"] = self.on_fit_epoch_end
        else:
            handlers["on_train_batch_end"] = self.on_train_batch_end
        return handlers

    # --- events ---------------------------------------------------------------------------
    def on_pretrain_routine_start(self, trainer: Any) -> None:
        self._batches = 0
        self._carry = None
        remove_stale_temps(self.checkpoint_dir)  # left by a process killed mid-write
        if trainer.args.resume:
            return
        if not self.auto_resume:
            self._delete_backups(foreign=True)  # another run's: this one starts anew
            return
        found = rank_backups.agree(self.backup_dir, distributed.rank(), self._world())
        if found is None:
            # nothing, or a rank killed while writing its first backup: every rank starts anew
            self._delete_backups()
            return
        if found.confirm:
            self._carry = found
        trainer.resume_from(found.files)  # once set-up is done (rank_backups says which)

    def _world(self) -> int:
        return distributed.world_size() if distributed.is_distributed() else 1

    def _delete_backups(self, *, foreign: bool = False) -> None:
        """This rank's backups; with ``foreign``, rank 0 also deletes those in folders no
        rank of this run writes (the other layout, ranks beyond this world size)."""
        for path in (self.latest, self.previous):
            path.unlink(missing_ok=True)
        if foreign and distributed.rank() == 0:
            world = self._world()
            mine = {rank_backups.layout_folder(self.backup_dir, r, world) for r in range(world)}
            for backup in rank_backups.scan(self.backup_dir):
                if backup.path.parent not in mine:
                    backup.path.unlink(missing_ok=True)
            self._remove_empty_folders()

    def _remove_empty_folders(self) -> None:
        if not self.backup_dir.is_dir():
            return
        for folder in self.backup_dir.iterdir():
            if folder.is_dir() and folder.name.startswith("rank"):
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only when nothing else is in it

    def on_train_batch_end(self, trainer: Any) -> None:
        self._batches += 1
        if self._batches >= self.save_freq:  # type: ignore[operator]
            self._batches = 0
            self.backup(trainer)

    def on_fit_epoch_end(self, trainer: Any) -> None:
        self.backup(trainer)

    def on_train_end(self, trainer: Any) -> None:
        self._writer.wait()
        if self.delete_checkpoint:
            self._delete_backups(foreign=True)
            for folder in dict.fromkeys((self.checkpoint_dir, self.backup_dir)):
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only when nothing else is in it (another rank's folder)

    def teardown(self, engine: Any) -> None:
        self._writer.close()

    def backup(self, trainer: Any) -> None:
        """Write a backup now (in the background; the previous one becomes previous.ckpt)."""
        if self._carry is not None:
            self._first_own_backup(trainer)
            return
        self._writer.save(build_checkpoint(trainer), self.latest, previous=self.previous)

    def _first_own_backup(self, trainer: Any) -> None:
        """The first backup after resuming from another world size's (or with such backups
        about): written at once, and the old run's files are removed only when every rank
        holds its own, so a kill at any moment leaves a complete set of one layout. The
        backup every rank resumed from is never rotated out before that (when it is this
        rank's previous.ckpt, latest.ckpt is replaced instead)."""
        carry = self._carry
        assert carry is not None
        kept = carry.across.path if carry.across is not None else None
        failures = self._writer.failures
        self._writer.save(build_checkpoint(trainer), self.latest,
                          previous=None if kept == self.previous else self.previous)
        self._writer.wait()  # raises a failed write (on_write_error="raise")
        written = int(self._writer.failures == failures)
        if not all(flags[0] for flags in distributed.all_gather_ints([written])):
            return  # some rank has no backup of its own yet: keep the old run's, try again
        self._carry = None
        world = self._world()
        mine = {rank_backups.layout_folder(self.backup_dir, r, world) for r in range(world)}
        for backup in carry.stale:
            if backup.path.parent == self.checkpoint_dir:
                # this rank's folder: remove it only if it still holds the old run's file
                current = rank_backups.read_backup(backup.path, distributed.rank(), world)
                if current is not None and current.world_size != world:
                    backup.path.unlink(missing_ok=True)
            elif backup.path.parent not in mine and distributed.rank() == 0:
                backup.path.unlink(missing_ok=True)
        if distributed.rank() == 0:
            self._remove_empty_folders()
