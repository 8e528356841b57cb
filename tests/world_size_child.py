"""One run of tests/test_world_size_change.py: under torchrun (gloo) or in one process.

``python world_size_child.py OUT BACKUPS TAG OPTIONS_JSON`` (torchrun starts it per rank), or
``train(...)`` called in the test's own process for a one-process run. Each rank saves what the
test checks to ``OUT/TAG-rank<r>.pt``: the weights at on_train_start and at the end, where the
run started, and the backup folder's files (name -> sha256) before its first backup.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch

import hookline
from hookline import distributed
from hookline.callbacks import BackupAndRestore
from hookline.checkpoint import read_checkpoint_info
from hookline.files.temp_files import TEMP_SUFFIX
from hookline.testing import tiny_data, tiny_model


def listing(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative name -> sha256), but the write in progress of
    another rank: its temporary file can be renamed between finding and reading it (a
    FileNotFoundError on one rank alone, which leaves its peer waiting in a collective)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.name.endswith(TEMP_SUFFIX):
            continue
        try:
            found[path.relative_to(folder).as_posix()] = hashlib.sha256(
                path.read_bytes()).hexdigest()
        except (FileNotFoundError, IsADirectoryError):
            continue  # a folder, or a file replaced since rglob saw it
    return found


class Watch(hookline.Callback):
    """Records the starting weights and, before the run's first backup (order 150 < 200),
    the backup folder's files."""

    def __init__(self, backups: Path) -> None:
        self.backups = backups
        self.record: dict[str, Any] = {}

    def on_train_start(self, trainer: Any) -> None:
        self.record.update(start_epoch=trainer.start_epoch, resumed=trainer.resumed,
                           start={k: v.clone() for k, v in trainer.model.state_dict().items()},
                           files_at_start=listing(self.backups) if self.backups.is_dir() else {})

    def on_fit_epoch_end(self, trainer: Any) -> None:
        if "files_before_first_backup" not in self.record:
            self.record["files_before_first_backup"] = listing(self.backups)


class DieBeforeBackup(hookline.Callback):
    """On rank ``rank``, at the first epoch end: wait until every other rank has written its
    first backup of this run (world size ``world`` in the header), then fail before writing
    its own, as a kill at that moment would."""

    order = 150

    def __init__(self, backups: Path, rank: int, world: int) -> None:
        self.backups, self.rank, self.world = backups, rank, world

    def on_fit_epoch_end(self, trainer: Any) -> None:
        if distributed.rank() != self.rank:
            return
        others = [self.backups / f"rank{r}" / "latest.ckpt" for r in range(self.world)
                  if r != self.rank]
        deadline = time.monotonic() + 60
        while not all(_world_of(path) == self.world for path in others):
            if time.monotonic() > deadline:
                raise TimeoutError("the other ranks never wrote their backups")
            time.sleep(0.05)
        raise RuntimeError(f"rank {self.rank} dies before its first backup")


def _world_of(path: Path) -> int | None:
    try:
        return read_checkpoint_info(path).get("world_size")
    except Exception:  # noqa: BLE001 - not there yet
        return None


class CrashAtEpochStart(hookline.Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: Any) -> None:
        if trainer.epoch == self.epoch:
            raise RuntimeError(f"crash at the start of epoch {self.epoch}")


def train(out: Path, backups: Path, tag: str, *, lr: float = 0.05,
          save_freq: str | int = "epoch", crash_epoch: int | None = None,
          die_rank: int | None = None, epochs: int = 4, resume: str | None = None) -> None:
    """Train the test's tiny model with BackupAndRestore(backups, delete_checkpoint=False)."""
    rank = distributed.rank()
    watch = Watch(backups)
    callbacks: list[Any] = [watch, BackupAndRestore(backups, save_freq=save_freq,
                                                    delete_checkpoint=False)]
    if crash_epoch is not None:
        callbacks.append(CrashAtEpochStart(crash_epoch))
    if die_rank is not None:
        callbacks.append(DieBeforeBackup(backups, die_rank, distributed.world_size()))
    trainer = hookline.Trainer(tiny_model(), optimizer="adam", lr=lr, loss="cross_entropy",
                               train_data=tiny_data(samples=48), batch_size=4, epochs=epochs,
                               seed=7, device="cpu", verbose=0, callbacks=callbacks,
                               resume=resume)
    trainer.fit()
    torch.save({**watch.record, "final": trainer.model.state_dict(), "step": trainer.step,
                "resumed_from": str(trainer.resumed_from), "world": trainer.world_size},
               out / f"{tag}-rank{rank}.pt")


def follow(out: Path, plan: list[dict[str, Any]]) -> None:
    """Several steps in one torchrun job (starting one costs seconds): ``run`` a fit (an
    exception's message is saved to OUT/TAG-rank<r>.err, for the test to check, and the next
    step runs), ``copy`` a folder or a file (rank 0, then every rank waits for it)."""
    import shutil

    import torch.distributed as dist
    for step in plan:
        if "copy" in step:
            source, target = (Path(p) for p in step["copy"])
            if distributed.rank() == 0:
                if source.is_dir():
                    shutil.copytree(source, target)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source, target)
            dist.barrier()
            continue
        options = dict(step["run"])
        backups, tag = Path(options.pop("backups")), options.pop("tag")
        try:
            train(out, backups, tag, **options)
        except Exception as error:  # noqa: BLE001 - recorded for the test; the next step runs
            (out / f"{tag}-rank{distributed.rank()}.err").write_text(str(error))
            # on stderr too: a failure on one rank alone leaves its peers in a collective,
            # and the test's timeout then shows what happened
            traceback.print_exc()
        dist.barrier()


if __name__ == "__main__":
    assert distributed.init_from_env("gloo")
    if sys.argv[2] == "plan":
        follow(Path(sys.argv[1]), json.loads(sys.argv[3]))
    else:
        train(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], **json.loads(sys.argv[4]))
