"""``hookline TASK --help``: one line per option with its type, default and help."""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any

from hookline.cli.tasks import TASKS, check_task, option_help

__all__ = ["HELP_WORDS", "task_help", "type_name"]

HELP_WORDS = ("-h", "--help", "help")


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
             _default_text(parameter.default), option_help(task, parameter.name))
            for parameter in inspect.signature(function).parameters.values()]
    rows.append(("cfg", "path", "None", "a YAML file of these options; words override it"))
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    summary = (function.__doc__ or "").strip().splitlines()[0]
    lines = [f"hookline {task} [key=value ...]   {summary}",
             f"  {'option':<{widths[0]}}  {'type':<{widths[1]}}  {'default':<{widths[2]}}  help"]
    lines += [f"  {name:<{widths[0]}}  {kind:<{widths[1]}}  {default:<{widths[2]}}  {text}"
              for name, kind, default, text in rows]
    return "\n".join(lines)
