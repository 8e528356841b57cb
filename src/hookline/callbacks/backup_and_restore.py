"""BackupAndRestore: back a run up as it trains; after a crash, the same script continues it."""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Any, Literal

from hookline import distributed
from hookline.callback import Callback
from hookline.checkpoint import (
    CheckpointError,
    CheckpointWriter,
    CorruptCheckpointError,
    build_checkpoint,
    read_checkpoint_info,
    remove_stale_temps,
    verify_checkpoint,
)

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
    backup they all hold: a kill can land while some ranks are still writing the last one.

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
        self.backup_dir = Path(backup_dir)
        self.save_freq = save_freq
        self.delete_checkpoint = bool(delete_checkpoint)
        self.auto_resume = bool(auto_resume)
        self._writer = CheckpointWriter(background=background, on_error=on_write_error)
        self._batches = 0

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
        remove_stale_temps(self.checkpoint_dir)  # left by a process killed mid-write
        if trainer.args.resume:
            return
        if not self.auto_resume:
            self._delete_backups()  # another run's: this one starts anew
            return
        if distributed.is_distributed():
            found: Path | None = self._agreed_backup()
        else:
            found = self.backup_dir if self.latest.exists() or self.previous.exists() else None
        if found is not None:
            trainer.resume_from(found)  # once set-up is done: the newest good backup there

    def _agreed_backup(self) -> Path | None:
        """This rank's file of the newest intact backup every rank holds (collectives). Ranks
        back up at the same points and each waits for its previous write before the next, so a
        kill leaves every rank holding the last backup or the one before it; a file damaged
        since is passed over by all ranks together, as a single process passes over it."""
        points: dict[tuple[int, ...], Path] = {}
        for path in (self.latest, self.previous):
            try:
                info = read_checkpoint_info(path)
            except (OSError, CheckpointError):
                continue  # absent, or a header that cannot be read: not a candidate
            point = tuple(int(info.get(key) or 0) for key in ("epoch", "step", "batches_done"))
            points[point] = path
        row = [value for point in sorted(points, reverse=True) for value in point]
        rows = distributed.all_gather_ints(row + [-1] * (6 - len(row)))
        held = [{tuple(r[i:i + 3]) for i in (0, 3) if r[i] >= 0} for r in rows]
        common = sorted(set.intersection(*held), reverse=True)  # the same order on all ranks
        damaged = []
        for point in common:
            path = points[point]
            try:
                verify_checkpoint(path)
                intact = 1
            except (OSError, CheckpointError) as error:
                intact = 0
                damaged.append(str(error))
                warnings.warn(f"{error}; every rank falls back to an older backup they all "
                              f"hold", RuntimeWarning, stacklevel=2)
            if all(flags[0] for flags in distributed.all_gather_ints([intact])):
                return path
        if any(not points_of_rank for points_of_rank in held):
            # a rank was killed while writing its first backup: every rank starts anew
            self._delete_backups()
            return None
        where = "; ".join(f"rank {r}: {sorted(points_of_rank)}"
                          for r, points_of_rank in enumerate(held))
        problem = "they come from different runs"
        if common:
            problem = "each one they share is damaged on some rank" + (
                f" (here: {'; '.join(damaged)})" if damaged else "")
        raise CorruptCheckpointError(None, f"the ranks' backups in {self.backup_dir} share no "
                                     f"intact point to resume from ((epoch, step, batches) "
                                     f"held by {where}); {problem}. Delete {self.backup_dir} "
                                     f"to start anew")

    def _delete_backups(self) -> None:
        for path in (self.latest, self.previous):
            path.unlink(missing_ok=True)

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
            self._delete_backups()
            for folder in dict.fromkeys((self.checkpoint_dir, self.backup_dir)):
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only when nothing else is in it (another rank's folder)

    def teardown(self, engine: Any) -> None:
        self._writer.close()

    def backup(self, trainer: Any) -> None:
        """Write a backup now (in the background; the previous one becomes previous.ckpt)."""
        self._writer.save(build_checkpoint(trainer), self.latest, previous=self.previous)
