"""The files of a run that trackers upload: the best weights, results.csv and results.png."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["RUN_FILES", "run_files"]

# under the trainer's save_dir: where the trainer, CSVLogger and PlotResults write by default
RUN_FILES = ("weights/best.pt", "results.csv", "results.png")


def run_files(trainer: Any, extra: Sequence[str | os.PathLike] = ()) -> dict[str, Path]:
    """Upload name (a path relative to the run, '/'-separated) -> file, for the standard run
    files that exist under ``trainer.save_dir`` and every ``extra`` file that exists."""
    found: dict[str, Path] = {}
    save_dir = getattr(trainer, "save_dir", None)
    if save_dir is not None:
        for name in RUN_FILES:
            path = Path(save_dir) / name
            if path.is_file():
                found[name] = path
    for item in extra:
        path = Path(item)
        if path.is_file():
            found.setdefault(path.name, path)
    return found
