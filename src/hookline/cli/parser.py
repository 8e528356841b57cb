"""``key=value`` words to typed task options, on jsonargparse (the parser LightningCLI uses).

jsonargparse derives each option's type and default from the task's signature, reads a YAML
file (``cfg=``), checks values against the types (``Literal`` choices included) and builds
callback objects from ``class_path``/``init_args`` specs. This module adds what the
Ultralytics style needs around it: ``key=value`` words, "did you mean" for typos, a compact
help table, and every parser error as one line.
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import re
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hookline.cli.errors import UsageError
from hookline.cli.tasks import OPTION_HELP, TASKS

__all__ = ["HELP_WORDS", "check_task", "parse_options", "task_help", "type_name"]

HELP_WORDS = ("-h", "--help", "help")
# modules whose Callback subclasses may be named by their short class name in callbacks=[...]
_CALLBACK_MODULES = ("hookline.callbacks", "hookline.loggers.mlflow", "hookline.loggers.wandb",
                     "hookline.loggers.tensorboard", "hookline.loggers.plot_results")
_NULLS = {"none": "null", "None": "null", "NONE": "null"}


def check_task(task: str) -> None:
    if task not in TASKS:
        close = difflib.get_close_matches(task, list(TASKS), n=2)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise UsageError(f"unknown task {task!r}.{hint} Tasks: {', '.join(TASKS)}")


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


def _action(parser: Any, key: str) -> Any:
    return next((action for action in parser._actions if action.dest == key), None)


def _one_line(message: str, task: str, parser: Any) -> str:
    """jsonargparse's (multi-line) message as one line naming the option, value and fix."""
    problem = _class_problem(message)
    if problem:
        return problem
    known = sorted(parameter.name for parameter in _options(task))
    unknown = re.search(r"Option '([^']+)' is not accepted", message) or \
        re.search(r"Key '([^']+)' is not expected", message)
    if unknown:
        close = difflib.get_close_matches(unknown.group(1), known, n=2)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        return f"unknown option {unknown.group(1)!r} for {task}.{hint}"
    keyed = re.match(r'Parser key "([^"]+)":', message)
    if keyed is None:
        return " ".join(line.strip() for line in message.splitlines() if line.strip())
    key = keyed.group(1)
    given = re.findall(r"(?:Got value|Given value): (.*)", message)
    action = _action(parser, key.split(".")[0])
    hint_type = getattr(action, "_typehint", None)
    value = given[-1] if given else None
    choices = [str(choice) for choice in _literal_choices(hint_type)]
    if value is not None and choices:
        close = difflib.get_close_matches(value, choices, n=1)
        hint = f" Did you mean {close[0]}?" if close else ""
        return f"{key}={value} is not allowed; use one of {', '.join(choices)}.{hint}"
    causes = _causes(message)
    if causes:
        return f"{key}: {'; '.join(causes)}"
    expected = type_name(hint_type) if hint_type is not None else "another value"
    return f"{key}={value} is not a valid {expected}"


def _class_problem(message: str) -> str | None:
    """A callback spec's mistake (an unknown init option, a bad value, a missing class)."""
    found = re.search(r"Problem with given class_path '([^']+)':\n((?:[ \t]+.*\n?)+)", message)
    if found is None:
        return None
    class_path = found.group(1)
    short = class_path.split(".")[-1]
    details = [line.strip() for line in found.group(2).splitlines()]
    skipped = ("- Expected a <class 'NoneType'>", "Given value")
    details = [line for line in details if line and not line.startswith(skipped)]
    text = " ".join(details)
    option = re.search(r"Option '([^']+)' is not accepted", text)
    if option:
        names = _init_names(class_path)
        close = difflib.get_close_matches(option.group(1), names, n=2)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        return f"{short} has no option {option.group(1)!r}{hint} (options: {', '.join(names)})"
    keyed = re.match(r'Parser key "([^"]+)": (.*)', text)
    if keyed:
        return f"{short}({keyed.group(1)}=...): {keyed.group(2)}"
    return f"{short}: {text}"


def _init_names(class_path: str) -> list[str]:
    module, _, name = class_path.rpartition(".")
    try:
        import importlib
        cls = getattr(importlib.import_module(module), name)
        return [p for p in inspect.signature(cls).parameters if p not in ("self", "args",
                                                                           "kwargs")]
    except Exception:  # noqa: BLE001 - only a hint
        return []


def _causes(message: str) -> list[str]:
    """The specific reasons in a union error (``- ...`` lines), the None alternative left out,
    each unknown class name with its nearest callback names."""
    causes = []
    for line in message.splitlines():
        text = line.strip()
        if not text.startswith("- ") or "NoneType" in text:
            continue
        text = text[2:]
        if text.startswith(("Expected a <class", "Expected a typing")):
            continue
        unknown = re.match(r"Expected a dot import path string: (\S+)", text) or \
            re.search(r"Import path (\S+) does not correspond", text)
        if unknown:
            name = unknown.group(1).split(".")[-1]
            close = difflib.get_close_matches(name, _callback_names(), n=2)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            text = (f"no callback class {unknown.group(1)!r}{hint} (give a name from "
                    f"hookline.callbacks or hookline.loggers, or package.module.Class)")
        causes.append(text)
    return causes


def _callback_names() -> list[str]:
    import hookline.callbacks
    import hookline.loggers
    return [*hookline.callbacks.__all__, *hookline.loggers.__all__]


def _literal_choices(hint: Any) -> list[Any]:
    if typing.get_origin(hint) is typing.Literal:
        return list(typing.get_args(hint))
    return []


def parse_options(task: str, words: Sequence[str]) -> dict[str, Any]:
    """The task's options from ``key=value`` words (and a ``cfg=`` YAML file), typed and
    checked, callbacks built; raises UsageError with a one-line message."""
    check_task(task)
    argv = _to_argv(task, words)
    parser = _build_parser(task)
    try:
        parsed = parser.parse_args(argv)
    except argparse.ArgumentError as error:
        raise UsageError(_one_line(str(error), task, parser)) from None
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
    try:
        built = instantiate(parsed)
    except ValueError as error:  # a callback's own check of its options
        causes = _causes(str(error))
        if not causes:
            raise
        raise UsageError("; ".join(causes)) from None
    return {parameter.name: built[parameter.name] for parameter in _options(task)}


def type_name(hint: Any) -> str:
    """A type hint as users write it: ``int | None``, ``list[Callback]``, ``adam|sgd``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return "|".join(str(arg) for arg in args)
    if origin is typing.Union or origin is types.UnionType:
        return " | ".join(type_name(arg) for arg in args)
    if hint is type(None):
        return "None"
    if origin is not None and args:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(map(type_name, args))}]"
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def _default_text(value: Any) -> str:
    if value is inspect.Parameter.empty:
        return "(required)"
    return repr(value) if isinstance(value, str) and value == "" else str(value)


def task_help(task: str) -> str:
    """The task's summary and one line per option: name, type, default, help."""
    check_task(task)
    function = TASKS[task]
    hints = typing.get_type_hints(function)
    rows = [(parameter.name, type_name(hints.get(parameter.name, Any)),
             _default_text(parameter.default), OPTION_HELP.get(parameter.name, ""))
            for parameter in _options(task)]
    rows.append(("cfg", "path", "None", "a YAML file of these options; words override it"))
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    summary = (function.__doc__ or "").strip().splitlines()[0]
    lines = [f"hookline {task} [key=value ...]   {summary}",
             f"  {'option':<{widths[0]}}  {'type':<{widths[1]}}  {'default':<{widths[2]}}  help"]
    lines += [f"  {name:<{widths[0]}}  {kind:<{widths[1]}}  {default:<{widths[2]}}  {text}"
              for name, kind, default, text in rows]
    return "\n".join(lines)
