"""jsonargparse's multi-line errors as one line naming the option, the value and the fix."""

from __future__ import annotations

import difflib
import inspect
import re
import typing
from typing import Any

from hookline.cli.help import type_name
from hookline.cli.tasks import TASKS

__all__ = ["causes", "one_line"]


def _action(parser: Any, key: str) -> Any:
    return next((action for action in parser._actions if action.dest == key), None)


def one_line(message: str, task: str, parser: Any) -> str:
    """jsonargparse's (multi-line) message as one line naming the option, value and fix."""
    problem = _class_problem(message)
    if problem:
        return problem
    known = sorted(inspect.signature(TASKS[task]).parameters)
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
    reasons = causes(message)
    if reasons:
        return f"{key}: {'; '.join(reasons)}"
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


def causes(message: str) -> list[str]:
    """The specific reasons in a union error (``- ...`` lines), the None alternative left out,
    each unknown class name with its nearest callback names."""
    found = []
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
        found.append(text)
    return found


def _callback_names() -> list[str]:
    import hookline.callbacks
    import hookline.loggers
    return [*hookline.callbacks.__all__, *hookline.loggers.__all__]


def _literal_choices(hint: Any) -> list[Any]:
    if typing.get_origin(hint) is typing.Literal:
        return list(typing.get_args(hint))
    return []
