"""Paths read back from a checkpoint: kept inside the callback's own folder, or ignored.

A checkpoint is data from disk. ModelCheckpoint deletes files its ranking pushes out and writes
into its folder; if the paths in a loaded state steered those operations, a crafted (or merely
moved) checkpoint could make a run delete any file the user can delete. So a stored path is
accepted only once it is re-based into, or found inside, the folder this run's callback owns.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["adopt_stored_path", "fixed_root", "is_inside"]


def fixed_root(folder: Path) -> Path:
    """The part of ``folder`` before any template field: ``ckpt/run{epoch}`` -> ``ckpt``."""
    parts = []
    for part in folder.parts:
        if "{" in part or "}" in part:
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def _real(path: Path) -> Path:
    """``path`` with its folder's links and ``..`` resolved; the last part is kept as named (a
    link inside the folder is the link, which ``unlink`` removes, not its target)."""
    absolute = Path(os.path.abspath(path))
    return absolute.parent.resolve() / absolute.name


def is_inside(path: Path, root: Path) -> bool:
    """Whether ``path`` lies in ``root`` or below it (after resolving links and ``..``)."""
    return _real(path).is_relative_to(root.resolve()) and _real(path) != root.resolve()


def adopt_stored_path(stored: str, stored_root: str | None, root: Path) -> Path | None:
    """``stored`` as a path inside ``root``, or None when it cannot be one.

    A path under the folder the checkpoint was written from (``stored_root``) is re-based to
    the same place under ``root`` (the run folder was moved or copied); a path already inside
    ``root`` is kept; anything else is rejected.
    """
    if not stored:
        return None
    path = Path(stored)
    if stored_root:
        old = Path(stored_root)
        try:
            relative = Path(os.path.abspath(path)).relative_to(os.path.abspath(old))
        except ValueError:
            relative = None
        if relative is not None and relative.parts and ".." not in relative.parts:
            moved = root / relative
            if is_inside(moved, root):
                return moved
    if is_inside(path, root):
        return path
    return None
