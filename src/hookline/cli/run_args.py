"""``<run>/args.yaml``: the options a ``train`` run was started with, so ``resume=True`` needs no
repeating of them (Ultralytics keeps the same file in every run folder).

The parser records the options as parsed (callbacks and loggers as their ``class_path`` /
``init_args`` specs, every default written out); ``train`` writes them into its run folder
when training starts (``ArgsWriter``, at ``on_train_start``), so a run that crashes has them
too, and a rerun the run's checkpoint refuses (``resume=True seed=1``) leaves the run's own
options as they were. ``resume=True`` reads the file
of the run it continues first, and the words given now override it (``epochs=`` to extend a
run); so does ``resume=<checkpoint>`` when the checkpoint lies inside a run folder (its
``backup/``), which it then continues in. Written atomically: a kill mid-write leaves the old
file or the new one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from hookline.callback import Callback

__all__ = ["ARGS_FILE", "ArgsWriter", "recorded_args", "recording", "run_of_checkpoint",
           "write_args"]

ARGS_FILE = "args.yaml"

# the options of the command being run, set by ``hookline.cli.main`` around its task
_RECORD: ContextVar[dict[str, Any] | None] = ContextVar("hookline_cli_record", default=None)


@contextlib.contextmanager
def recording(record: dict[str, Any] | None) -> Iterator[None]:
    """Make ``record`` the options ``write_args`` writes while the task runs."""
    token = _RECORD.set(record)
    try:
        yield
    finally:
        _RECORD.reset(token)


def write_args(run_dir: Path) -> None:
    """Write this command's options into ``run_dir/args.yaml`` (as the run's own: its folder
    as ``save_dir``, not resuming); nothing when the task was called from Python."""
    record = _RECORD.get()
    if record is None:
        return
    import yaml

    from hookline.files.atomic import atomic_write_bytes
    options = {**record, "save_dir": str(run_dir), "resume": False, "exist_ok": False}
    run_dir.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(options, sort_keys=False, default_flow_style=False)
    atomic_write_bytes(text.encode(), run_dir / ARGS_FILE)


class ArgsWriter(Callback):
    """``write_args(run_dir)`` when training starts: after every check of the run (a resume's
    above all) has passed, so a refused rerun does not replace the options of the run it
    would have continued, and before the first batch, so a crash has them."""

    order = 1000  # after every other callback's on_train_start, which may still refuse

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def on_train_start(self, trainer: Any) -> None:
        write_args(self.run_dir)


def recorded_args(run_dir: Path) -> Path | None:
    """The run's ``args.yaml``, if it has one (runs made before it was written have not)."""
    path = run_dir / ARGS_FILE
    return path if path.is_file() else None


# how many folders above a checkpoint its run folder may be: <run>/backup/rank0/latest.ckpt
_RUN_DEPTH = 3


def run_of_checkpoint(checkpoint: Path) -> Path | None:
    """The run folder holding ``checkpoint`` (a file, or a folder of them taken as a file in
    it): the nearest folder above it, at most three up, with an ``args.yaml``; None outside
    any run."""
    folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
    for candidate in [folder, *folder.parents][:_RUN_DEPTH]:
        if recorded_args(candidate) is not None:
            return candidate
    return None
