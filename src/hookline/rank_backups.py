"""Which backup of a BackupAndRestore folder a run resumes from, in either of its layouts.

One process backs up into ``backup_dir/`` (``latest.ckpt``, ``previous.ckpt``); each rank of a
torchrun job into ``backup_dir/rank<r>/``. A run may come back with another number of ranks,
so every backup of both layouts is read by its header (run id, rank, world size, position; no
unpickling), and the ranks agree through collectives on one choice, the newest of:

* a point (epoch, optimizer step, batches done) at which every rank holds an intact backup of
  one run saved with this number of ranks: the exact resume, each rank from its own file;
* rank 0's intact backup of a run saved with another number of ranks, taken at an epoch
  boundary: every rank loads that one file (``hookline.resume`` warns that the rest of the
  run is not bitwise equal to an uninterrupted one). A newer mid-epoch backup of that run is
  passed over with a warning; when there is no epoch-boundary one, it is an error.

At the same point, this world size's backups win. Backups of two runs are never mixed: the
ranks compare run ids, not only positions.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hookline import distributed
from hookline.files.checkpoint_format import read_checkpoint_info, verify_checkpoint
from hookline.files.errors import CheckpointError, CheckpointMismatchError, CorruptCheckpointError
from hookline.user_warning import warn

__all__ = ["BackupFile", "Resume", "agree", "layout_folder", "read_backup", "scan"]

NAMES = ("latest.ckpt", "previous.ckpt")
EPOCH_BOUNDARY_PHASES = ("epoch_done", "idle", "setup")  # as hookline.resume reads them
_RANK_FOLDER = re.compile(r"rank(\d+)")
_ABSENT = -1


@dataclass(frozen=True)
class BackupFile:
    """One backup, as its header describes it."""

    path: Path
    run_id: str
    world_size: int
    rank: int
    epoch: int
    step: int
    batches_done: int
    phase: str

    @property
    def point(self) -> tuple[int, int, int]:
        return (self.epoch, self.step, self.batches_done)

    @property
    def at_epoch_boundary(self) -> bool:
        return self.phase in EPOCH_BOUNDARY_PHASES

    @property
    def run_key(self) -> int:
        return run_key(self.run_id)

    def describe(self) -> str:
        where = "before training" if self.phase in ("idle", "setup") else (
            f"after epoch {self.epoch}" if self.phase == "epoch_done" else
            f"in epoch {self.epoch} after {self.batches_done} batches")
        return f"{self.path} ({where}, {self.world_size} rank(s), run {self.run_id or '?'})"


@dataclass
class Resume:
    """What this rank resumes from: ``files`` best first (a single process may fall back to
    the next when the first cannot be applied); ``across`` is set when that is another world
    size's backup; ``stale`` lists the other world sizes' backups, kept until this run's own
    backups exist on every rank."""

    files: list[Path]
    across: BackupFile | None = None
    stale: list[BackupFile] = field(default_factory=list)
    confirm: bool = False  # the same on every rank: the first backup waits for all of them


def run_key(run_id: str) -> int:
    """A run id as one non-negative int64 (a run id is 12 hex digits: the key is its value)."""
    if re.fullmatch(r"[0-9a-f]{1,12}", run_id or ""):
        return int(run_id, 16)
    return int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:6], "big") if run_id else 0


def layout_folder(backup_dir: Path, rank: int, world: int) -> Path:
    """Where rank ``rank`` of a ``world``-rank run writes its backups."""
    return backup_dir if world == 1 else backup_dir / f"rank{rank}"


def scan(backup_dir: Path) -> list[BackupFile]:
    """Every backup in ``backup_dir`` in either layout whose header reads. Headers written
    before they named rank and world size get them from the layout (a folder rank<r> of as
    many ranks as there are such folders; the top folder: one process)."""
    folders: list[tuple[Path, int, int]] = [(backup_dir, 0, 1)]
    if backup_dir.is_dir():
        ranked = sorted((int(match.group(1)), child) for child in backup_dir.iterdir()
                        if child.is_dir() and (match := _RANK_FOLDER.fullmatch(child.name)))
        folders += [(child, rank, len(ranked)) for rank, child in ranked]
    found = []
    for folder, rank, world in folders:
        for name in NAMES:
            backup = read_backup(folder / name, rank, world)
            if backup is not None:
                found.append(backup)
    return found


def read_backup(path: Path, rank: int, world: int) -> BackupFile | None:
    """The backup at ``path`` (``rank``, ``world``: what its header may lack), or None."""
    try:
        info = read_checkpoint_info(path)
    except (OSError, CheckpointError):
        return None  # absent, or a header that cannot be read: not a candidate
    return BackupFile(path=path, run_id=str(info.get("run_id") or ""),
                      world_size=_int(info.get("world_size"), world),
                      rank=_int(info.get("rank"), rank), epoch=_int(info.get("epoch"), 0),
                      step=_int(info.get("step"), 0),
                      batches_done=_int(info.get("batches_done"), 0),
                      phase=str(info.get("phase") or "train"))


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


# --- the agreement (collectives: every rank calls agree, in the same order) ---------------
def agree(backup_dir: Path, rank: int, world: int) -> Resume | None:
    """The backup every rank resumes from (see the module doc), or None when there is none
    and the run starts anew. Raises CheckpointMismatchError for a mid-epoch backup of another
    world size with nothing older to go back to, CorruptCheckpointError when the backups
    share no intact point (damaged, or of different runs)."""
    every = scan(backup_dir)
    own_folder = layout_folder(backup_dir, rank, world)
    own: dict[tuple[int, ...], BackupFile] = {}
    for backup in every:  # latest first, so it is kept when both sit at one point
        if backup.path.parent == own_folder and backup.world_size == world and \
                backup.rank == rank:
            own.setdefault((backup.run_key, *backup.point), backup)
    held = _gather_held(sorted(own, key=_by_point, reverse=True))
    common = sorted(set.intersection(*held), key=_by_point, reverse=True)
    _refuse_two_runs_at_one_point(common, backup_dir)
    others = [backup for backup in every if backup.world_size != world]
    across = sorted((backup for backup in others if backup.rank == 0),
                    key=lambda backup: backup.point, reverse=True)
    _check_same_view(across, backup_dir)
    stale_somewhere = distributed.any_rank(bool(others))
    ordered: list[tuple[tuple[int, ...], int, BackupFile]] = \
        [(key[1:], 1, own[key]) for key in common] + [(b.point, 0, b) for b in across]
    ordered.sort(key=lambda entry: (entry[0], entry[1]), reverse=True)
    dropped: list[BackupFile] = []
    damaged: list[str] = []
    for index, (_, same_world, backup) in enumerate(ordered):
        if not same_world and not backup.at_epoch_boundary:
            dropped.append(backup)
            continue
        if not _intact_everywhere(backup.path, damaged):
            continue
        if dropped:
            _warn_dropped(dropped, backup, world)
        if not same_world:
            return Resume(files=[backup.path], across=backup, stale=others, confirm=True)
        files = [backup.path]
        if world == 1:  # one process may fall back further, as resume=<folder> does
            files += [entry[2].path for entry in ordered[index + 1:] if entry[1]]
        return Resume(files=files, stale=others, confirm=stale_somewhere)
    if dropped:
        newest = dropped[0]
        raise CheckpointMismatchError(
            newest.path, f"{backup_dir} holds a backup taken in the middle of an epoch by a "
                         f"run with {newest.world_size} rank(s): {newest.describe()}, and this "
                         f"run has {world}; a run continues on another number of ranks only "
                         f"from an epoch boundary, and there is none to go back to. Resume it "
                         f"with {newest.world_size} rank(s) (torchrun --nproc_per_node="
                         f"{newest.world_size}, or one process for 1), or back up with "
                         f"BackupAndRestore(save_freq=\"epoch\"). Nothing was deleted")
    if not ordered and any(not points for points in held):
        return None  # nothing here, or a rank killed while writing its first backup
    where = "; ".join(f"rank {r}: {_show(sorted(points, key=_by_point))}"
                      for r, points in enumerate(held))
    if across:
        where += "; rank 0 of another world size: " + ", ".join(b.describe() for b in across)
    problem = "they come from different runs"
    if ordered:
        problem = "each one they share is damaged on some rank" + (
            f" (here: {'; '.join(damaged)})" if damaged else "")
    raise CorruptCheckpointError(None, f"the ranks' backups in {backup_dir} share no intact "
                                 f"point to resume from ((epoch, step, batches) and run held "
                                 f"by {where}); {problem}. Delete {backup_dir} to start "
                                 f"anew")


def _by_point(key: tuple[int, ...]) -> tuple[int, ...]:
    return (*key[1:], key[0])  # position first; the run key only orders ties the same way


def _gather_held(keys: list[tuple[int, ...]]) -> list[set[tuple[int, ...]]]:
    """Every rank's (run key, epoch, step, batches) of its own backups (two at most)."""
    row = [value for key in keys[:2] for value in key]
    rows = distributed.all_gather_ints(row + [_ABSENT] * (8 - len(row)))
    return [{tuple(r[i:i + 4]) for i in (0, 4) if r[i + 1] != _ABSENT} for r in rows]


def _refuse_two_runs_at_one_point(common: list[tuple[int, ...]], backup_dir: Path) -> None:
    """Every rank holding two runs' backups at one point: which run to continue is unknown."""
    for first, second in itertools.pairwise(common):
        if first[1:] == second[1:]:
            raise CorruptCheckpointError(
                None, f"every rank's backups in {backup_dir} hold two runs at the same point "
                      f"(epoch {first[1]}, step {first[2]}, {first[3]} batches): run "
                      f"{first[0]:012x} and run {second[0]:012x}; resuming cannot tell "
                      f"which one to continue. Remove the other run's files (or delete "
                      f"{backup_dir} to start anew)")


def _check_same_view(across: list[BackupFile], backup_dir: Path) -> None:
    """Every rank must see the same backups of other world sizes to choose alike."""
    text = repr([(b.path.relative_to(backup_dir).as_posix(), b.run_id, b.world_size, b.point,
                  b.phase) for b in across])
    digest = int.from_bytes(hashlib.sha256(text.encode()).digest()[:6], "big")
    views = distributed.all_gather_ints([len(across), digest])
    if any(view != views[0] for view in views):
        raise CorruptCheckpointError(
            None, f"the ranks do not see the same backups in {backup_dir} (counts of backups "
                  f"of another number of ranks, by rank: {[view[0] for view in views]}); a run "
                  f"continues on another number of ranks only when {backup_dir} is one folder "
                  f"every rank reads (a shared filesystem)")


def _intact_everywhere(path: Path, damaged: list[str]) -> bool:
    """Whether every rank's file at this candidate verifies (a collective)."""
    try:
        verify_checkpoint(path)
        intact = 1
    except (OSError, CheckpointError) as error:
        intact = 0
        damaged.append(str(error))
        warn(f"{error}; every rank falls back to an older backup they all hold",
             RuntimeWarning)
    return all(flags[0] for flags in distributed.all_gather_ints([intact]))


def _warn_dropped(dropped: list[BackupFile], chosen: BackupFile, world: int) -> None:
    if distributed.rank() != 0:
        return  # once per run
    passed = "; ".join(backup.describe() for backup in dropped)
    warn(f"passing over the newer backup(s) {passed}: taken in the middle of an epoch "
         f"by a run with another number of ranks than this one's {world}, they cannot "
         f"be continued here. The run goes back to {chosen.describe()}; what was "
         f"trained after it is trained again", RuntimeWarning)


def _show(keys: list[tuple[int, ...]]) -> str:
    return "[" + ", ".join(f"({k[1]}, {k[2]}, {k[3]}) run {k[0]:012x}" for k in keys) + "]"
