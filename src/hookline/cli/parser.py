"""``key=value`` words to typed task options, on jsonargparse (the parser LightningCLI uses).

jsonargparse derives each option's type and default from the task's signature, reads a YAML
file (``cfg=``), checks values against the types (``Literal`` choices included) and builds
callback objects from ``class_path``/``init_args`` specs. This module adds what the
Ultralytics style needs around it: ``key=value`` words and "did you mean" for typos; the help
table is in ``hookline.cli.help``, the one-line errors in ``hookline.cli.messages``.
"""

from __future__ import annotations

import argparse
import difflib
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hookline.cli.errors import UsageError
from hookline.cli.messages import causes, one_line
from hookline.cli.tasks import TASKS, check_task

__all__ = ["parse_options", "parse_recorded"]

# modules whose Callback subclasses may be named by their short class name in callbacks=[...]
_CALLBACK_MODULES = ("hookline.callbacks", "hookline.loggers.mlflow", "hookline.loggers.wandb",
                     "hookline.loggers.tensorboard", "hookline.loggers.plot_results")
_NULLS = {"none": "null", "None": "null", "NONE": "null"}


def _options(task: str) -> list[inspect.Parameter]:
    return list(inspect.signature(TASKS[task]).parameters.values())


def _build_parser(task: str) -> Any:
    import importlib

    from jsonargparse import ActionConfigFile, ArgumentParser

    for module in _CALLBACK_MODULES:  # registers the subclasses jsonargparse resolves names in
        importlib.import_module(module)
    parser = ArgumentParser(prog=f"hookline {task}", exit_on_error=False)
    parser.add_argument("--cfg", action=ActionConfigFile,
                        help="a YAML file of these options; key=value words override it")
    parser.add_function_arguments(TASKS[task], fail_untyped=True)
    return parser


def _to_argv(task: str, words: Sequence[str]) -> list[str]:
    """``key=value`` (or ``--key=value``, ``--flag``) words as jsonargparse's ``--key=value``,
    with the cfg= file first so that the words after it override it."""
    known = {parameter.name for parameter in _options(task)} | {"cfg"}
    config: list[str] = []
    argv: list[str] = []
    for word in words:
        body = word.removeprefix("--")
        key, sep, value = body.partition("=")
        if word.startswith("--") and not sep:
            value, sep = "true", "="
        if not sep or not key:
            raise UsageError(f"arguments are key=value pairs, got {word!r} (e.g. epochs=10)")
        key = key.replace("-", "_")
        root = key.split(".")[0].rstrip("+")
        if root not in known:
            close = difflib.get_close_matches(root, sorted(known), n=2)
            hint = f" Did you mean {' or '.join(close)}?" if close else ""
            raise UsageError(f"unknown option {root!r} for {task}.{hint} "
                             f"Options: {', '.join(sorted(known))}")
        if key == "cfg":
            if not Path(value).is_file():
                raise UsageError(f"config file {value} does not exist")
            config.append(f"--cfg={value}")
            continue
        argv.append(f"--{key}={_NULLS.get(value, value)}")
    return config + argv


def parse_options(task: str, words: Sequence[str]) -> dict[str, Any]:
    """The task's options from ``key=value`` words (and a ``cfg=`` YAML file), typed and
    checked, callbacks built; raises UsageError with a one-line message."""
    return parse_recorded(task, words)[0]


def parse_recorded(task: str, words: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(options, record)``: the options as ``parse_options`` gives them, and the same as
    plain values for ``<run>/args.yaml`` (callbacks as their specs). ``train resume=True``
    (or ``resume=`` a checkpoint inside a run folder) reads the args.yaml of the run it
    continues first; the words override it."""
    check_task(task)
    parser = _build_parser(task)
    parsed = _parse(task, words, parser)
    recorded = _resumed_args(parsed) if task == "train" else None
    if recorded is not None:
        try:
            parsed = _parse(task, [f"cfg={recorded}", *words], parser)
        except UsageError as error:
            # resume=True names a run folder; a checkpoint's folder may hold another tool's
            # args.yaml (an Ultralytics run has one), which is not to be deleted
            fix = "mend or delete that file" if parsed.get("resume") is True else (
                "mend that file, or resume from a copy of the checkpoint outside that folder "
                "with the options given")
            raise UsageError(f"{str(error).rstrip('.')} (reading {recorded}, the options "
                             f"of the run being resumed: {fix})") from None
        _check_resumed_lr(task, recorded, parsed, parser)
    record = parsed.clone()
    del record["cfg"]
    import yaml
    dumped = yaml.safe_load(parser.dump(record, skip_validation=True, skip_unset=False))
    return _instantiate(task, parser, parsed), dumped


def _resumed_args(parsed: Any) -> Path | None:
    """The args.yaml of the run a ``train resume=`` continues, if it has one."""
    from hookline.cli.run_args import recorded_args, run_of_checkpoint
    from hookline.cli.tasks import resumed_run_dir
    resume = parsed.get("resume")
    if resume is True:
        return recorded_args(resumed_run_dir(parsed.get("save_dir"), "runs/train"))
    if isinstance(resume, str) and resume:
        if not Path(resume).exists():  # refused here, before a run folder is made for it
            raise UsageError(f"resume={resume!r}: no such checkpoint file or folder; give a "
                             f"checkpoint (e.g. runs/train/backup/latest.ckpt), a folder of "
                             f"them, or resume=True for the newest run")
        run = run_of_checkpoint(Path(resume))
        return recorded_args(run) if run is not None else None
    return None


def _check_resumed_lr(task: str, recorded: Path, parsed: Any, parser: Any) -> None:
    """A resume restores the optimizer's state exactly, its rate included: an ``lr=`` other
    than the run's would be written into args.yaml and not used, so it is refused here,
    before anything is written or trained (the engine refuses it too, naming both rates)."""
    saved = _parse(task, [f"cfg={recorded}"], parser).get("lr")
    if parsed.get("lr") == saved:
        return
    weights = recorded.parent / "weights" / "last.pt"
    raise UsageError(f"lr={parsed.get('lr')} but the run being resumed ({recorded.parent}) "
                     f"trained with lr={saved}, and a resume restores its optimizer's state, "
                     f"rate included; resume without lr=, or start a new run from its weights "
                     f"with that rate: hookline train weights={weights} lr={parsed.get('lr')}")


def _parse(task: str, words: Sequence[str], parser: Any) -> Any:
    try:
        return parser.parse_args(_to_argv(task, words))
    except argparse.ArgumentError as error:
        raise UsageError(one_line(str(error), task, parser)) from None


def _instantiate(task: str, parser: Any, parsed: Any) -> dict[str, Any]:
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
    try:
        built = instantiate(parsed)
    except ValueError as error:  # a callback's own check of its options
        reasons = causes(str(error))
        if not reasons:
            raise
        raise UsageError("; ".join(reasons)) from None
    return {parameter.name: built[parameter.name] for parameter in _options(task)}


