"""The command line: ``hookline TASK key=value ...`` (Ultralytics' style), plus a YAML config.

Tasks: ``train``, ``val``, ``predict``, ``export``, ``demo``, ``events``. Examples::

    hookline train model=digits_cnn data=digits epochs=20 patience=5
    hookline train model=mymodel.py:build data=mydata.npz cfg=run.yaml
    hookline train resume=True
    hookline val weights=runs/train/weights/best.pt
    hookline predict weights=runs/train/weights/best.pt source=inputs.npy
    hookline export weights=runs/train/weights/best.pt format=onnx

``hookline TASK --help`` lists the task's options with their types and defaults. Options are
``key=value`` words (``--key=value`` too), or a YAML file of them (``cfg=run.yaml``; words given
with it override it). Callbacks and loggers are built from ``class_path``/``init_args`` specs,
in YAML or in a word: ``callbacks=[{class_path: EarlyStopping, init_args: {patience: 3}}]``.

``train`` writes a new run folder each time (``runs/train``, ``runs/train2``, ...; ``exist_ok=True``
reuses ``save_dir``), backs the run up in ``<run>/backup`` after every epoch and keeps the
backup, and its options in ``<run>/args.yaml``. ``resume=True`` continues the newest run (or
``save_dir=``) from that backup with those options: after a crash, or to extend a finished
run (``epochs=`` larger; words given override the recorded options). Weights files record
how to rebuild the model and the shape of its input, so ``val``, ``predict`` and ``export``
need only ``weights=``.

A mistake (an unknown option, a wrong value, a missing file, an unavailable device) is printed
as one line and the exit status is 2; ``HOOKLINE_TRACEBACK=1`` shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from hookline.cli.errors import UsageError

__all__ = ["UsageError", "main", "parse_options", "usage"]

# exceptions that mean "the command asked for something impossible", not a bug in hookline
_USER_ERRORS: tuple[type[BaseException], ...] = (
    UsageError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)
# exceptions that are a worded refusal when hookline raised them, and a bug to show with its
# traceback when they come from the user's model, data or callbacks (or from torch)
_WORDED_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, ImportError)
_WORDING_PACKAGES = ("hookline", "jsonargparse")


def parse_options(task: str, words: Sequence[str]) -> dict[str, object]:
    """The options of ``task`` from its ``key=value`` words; see ``hookline.cli.parser``."""
    from hookline.cli.parser import parse_options as parse
    return parse(task, words)


def usage() -> str:
    """``hookline --help``: what the command does, then every task's options."""
    from hookline.cli.help import task_help
    from hookline.cli.tasks import TASKS
    head = [part.strip("\n") for part in
            (__doc__ or "").replace("``", "").replace("::", ":").split("\n\n")]
    return "\n\n".join(["usage: hookline TASK [key=value ...]", *head[1:],
                        *(task_help(task) for task in TASKS)]) + "\n"


def _is_user_error(error: BaseException) -> bool:
    if isinstance(error, _USER_ERRORS):
        return True
    checkpoint = sys.modules.get("hookline.checkpoint")
    if checkpoint is not None and isinstance(error, checkpoint.CheckpointError):
        return True
    return isinstance(error, _WORDED_ERRORS) and _raised_by(error, _WORDING_PACKAGES)


def _raised_by(error: BaseException, packages: tuple[str, ...]) -> bool:
    """Whether the innermost frame of ``error``'s traceback is in one of ``packages``."""
    frame_traceback = error.__traceback__
    if frame_traceback is None:
        return False
    while frame_traceback.tb_next is not None:
        frame_traceback = frame_traceback.tb_next
    module = frame_traceback.tb_frame.f_globals.get("__name__", "")
    return isinstance(module, str) and module.split(".")[0] in packages


def _one_line(error: BaseException) -> str:
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return text or type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hookline`` console script; returns the exit status."""
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        from hookline.cli.help import HELP_WORDS, task_help
        from hookline.cli.tasks import check_task
        if not words or words[0] in HELP_WORDS:
            print(usage(), end="")
            return 0
        task, rest = words[0], words[1:]
        check_task(task)
        if any(word in HELP_WORDS for word in rest):
            print(task_help(task))
            return 0
        from hookline.cli.parser import parse_recorded
        from hookline.cli.run_args import recording
        from hookline.cli.tasks import TASKS
        options, record = parse_recorded(task, rest)
        with recording(record):  # train writes it into its run folder (args.yaml)
            TASKS[task](**options)
    except SystemExit as done:  # jsonargparse's own help (callbacks.help=EarlyStopping)
        return done.code if isinstance(done.code, int) else 0
    except Exception as error:
        if not _is_user_error(error) or os.environ.get("HOOKLINE_TRACEBACK") == "1":
            raise
        print(f"hookline: error: {_one_line(error)}", file=sys.stderr)
        return 2
    return 0
