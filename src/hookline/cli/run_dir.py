"""Run folders as Ultralytics numbers them: runs/train, runs/train2, runs/train3..."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["latest_run_dir", "next_run_dir"]


def _numbered(base: Path) -> list[tuple[int, Path]]:
    """``base`` (number 1) and its siblings ``base2``, ``base3``... that exist."""
    found = [(1, base)] if base.exists() else []
    if base.parent.is_dir():
        pattern = re.compile(re.escape(base.name) + r"(\d+)$")
        for sibling in base.parent.iterdir():
            match = pattern.match(sibling.name)
            if match and int(match.group(1)) >= 2:
                found.append((int(match.group(1)), sibling))
    return sorted(found)


def next_run_dir(base: str | Path, *, exist_ok: bool = False) -> Path:
    """``base`` when it is free (or ``exist_ok``), else the first free ``base2``, ``base3``...

    A new run never writes into an old run's folder unless asked to, so its weights and
    results cannot silently replace the previous run's."""
    base = Path(base)
    if exist_ok or not base.exists():
        return base
    taken = {number for number, _ in _numbered(base)}
    number = 2
    while number in taken or base.with_name(f"{base.name}{number}").exists():
        number += 1
    return base.with_name(f"{base.name}{number}")


def latest_run_dir(base: str | Path) -> Path | None:
    """The highest-numbered existing run folder of ``base`` (``base`` itself is number 1)."""
    found = _numbered(Path(base))
    return found[-1][1] if found else None
