"""Numbers given as strings to the Keras door: ``Model(lr="1e-3")``, ``fit(epochs="5")``.

Values read from a YAML or JSON config, a command line or an environment variable often arrive
as strings. ``lr="1e-3"`` would fail deep inside the optimizer, and ``shuffle="False"`` would
silently mean True. The decorator below converts a string when its meaning is unambiguous and
otherwise raises a ValueError naming the option, the value and what to pass. (The Trainer's
own options are checked by ``hookline.options``.) ``reject_unknown`` turns a misspelt or
misplaced option into an error that names the nearest valid ones.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar

from hookline.options import ACCEPTED_SWITCHES, SWITCH_WORDS

__all__ = ["OPTION_KINDS", "convert_option", "numbers_from_strings", "reject_unknown"]

P = ParamSpec("P")
R = TypeVar("R")

# the Keras-door options that take numbers or switches, and the kind each takes
OPTION_KINDS: dict[str, type] = {
    "lr": float, "learning_rate": float, "epochs": int, "batch_size": int, "verbose": int,
    "validation_split": float, "initial_epoch": int, "steps_per_epoch": int, "shuffle": bool,
    "validation_batch_size": int, "validation_freq": int, "steps": int,
    "validation_steps": int,
}
# a valid value of each, for the hint of an error (verbose=5 would itself be refused)
_EXAMPLES: dict[str, str] = {
    "lr": "1e-3", "learning_rate": "1e-3", "epochs": "5", "batch_size": "32",
    "verbose": "1 (0 silent, 1 a progress bar, 2 one line per epoch, or 'auto')",
    "validation_split": "0.2", "initial_epoch": "0", "steps_per_epoch": "100",
    "validation_batch_size": "32", "validation_freq": "1", "steps": "10",
    "validation_steps": "10",
}


def convert_option(owner: str, name: str, value: str, kind: type) -> Any:
    """``value`` (a string) as ``kind``, or a ValueError naming ``owner(name=...)``."""
    text = value.strip()
    where = f"{owner}({name}={value!r})"
    if kind is bool:
        switch = SWITCH_WORDS.get(text.lower())  # the Trainer's rule (hookline.options)
        if switch is not None:
            return switch
        raise ValueError(f"{where}: {name} is a switch; pass {ACCEPTED_SWITCHES}")
    if kind is int and name == "verbose" and text.lower() == "auto":
        return 1  # Keras' "auto": a progress bar
    try:
        number = float(text)
    except ValueError:
        example = _EXAMPLES.get(name, "1e-3" if kind is float else "1")
        raise ValueError(f"{where}: {name} must be a number and {value!r} is not one; pass "
                         f"e.g. {name}={example}") from None
    if not math.isfinite(number):
        raise ValueError(f"{where}: {name} must be a finite number, got {value!r}")
    if kind is float:
        return number
    if not number.is_integer():
        raise ValueError(f"{where}: {name} must be a whole number, got {value!r}; pass "
                         f"{name}={int(number)} or {name}={int(number) + 1}")
    return int(number)


def numbers_from_strings(function: Callable[P, R]) -> Callable[P, R]:
    """Convert the string values of ``OPTION_KINDS`` options of ``function`` (see above)."""
    signature = inspect.signature(function)
    names = [name for name in signature.parameters if name in OPTION_KINDS]
    qualname = function.__qualname__
    owner = qualname.split(".")[0] if qualname.endswith("__init__") else qualname

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            bound = signature.bind_partial(*args, **kwargs)
        except TypeError:
            return function(*args, **kwargs)  # the function reports its own misuse
        changed = False
        for name in names:
            value = bound.arguments.get(name)
            if isinstance(value, str):
                bound.arguments[name] = convert_option(owner, name, value, OPTION_KINDS[name])
                changed = True
        if not changed:
            return function(*args, **kwargs)
        return function(*bound.args, **bound.kwargs)

    return wrapper


def reject_unknown(owner: str, given: Iterable[str], accepted: Iterable[str],
                   elsewhere: dict[str, str] | None = None) -> None:
    """A TypeError for the first option of ``given`` that ``owner`` does not take: where it
    belongs when ``elsewhere`` says (an option set on the Model, not per call), else the
    nearest accepted names."""
    known = sorted(set(accepted))
    for name in given:
        if name in known:
            continue
        if elsewhere and name in elsewhere:
            raise TypeError(f"{owner}() does not take {name}=; {elsewhere[name]}")
        close = difflib.get_close_matches(name, known + sorted(elsewhere or ()), n=3)
        hint = f"did you mean {' or '.join(close)}?" if close else \
            f"{owner}() takes {', '.join(known)}"
        raise TypeError(f"{owner}() got an unknown option {name!r}; {hint}")
