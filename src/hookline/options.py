"""Option checks done when a Trainer is built, so a bad option fails in a second, not an epoch.

Every error names the option, the value given and the fix.

Strings for numbers, one rule: a string is converted when it is exactly a literal of the
option's kind (``"1e-3"`` for ``lr``, ``"5"`` for ``epochs``; spaces around it are allowed),
and rejected otherwise (``"5.0"`` for an integer option, ``"fast"``, ``"nan"``). A config
file or command line that hands over text then works, and nothing is guessed.

Switches, one rule (the Keras door's too): True or False; a string is converted when it is one
of ``SWITCH_WORDS`` (``"False"``, ``"no"``, ``"off"``, ``"0"``...), whatever its case, so
``"False"`` never silently means True; any other value (``"maybe"``, None, a list) is an error.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ACCEPTED_SWITCHES", "SWITCH_WORDS", "check_save_dir", "check_trainer_numbers",
           "check_trainer_switches", "to_bool", "to_float", "to_int"]

_INT = re.compile(r"^[+-]?\d+$")
# the strings a switch takes (lower case), and what each means
SWITCH_WORDS: dict[str, bool] = {"true": True, "yes": True, "on": True, "1": True,
                                 "false": False, "no": False, "off": False, "0": False}
ACCEPTED_SWITCHES = "True or False (or a string: 'true'/'false', 'yes'/'no', 'on'/'off', '1'/'0')"


def to_int(name: str, value: Any, *, low: int | None = None, owner: str = "Trainer",
           meaning: str = "") -> int:
    """``value`` as an int >= ``low``: an int, or a string that is exactly an integer."""
    given = value
    if isinstance(value, str) and _INT.match(value.strip()):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or (low is not None
                                                                 and value < low):
        kind = f"an integer >= {low}" if low is not None else "an integer"
        raise ValueError(f"{owner}({name}={given!r}) is not allowed: {name} must be {kind}"
                         f"{meaning}; pass e.g. {name}={max(low or 0, 1)}")
    return value


def to_float(name: str, value: Any, *, positive: bool = False, owner: str = "Trainer",
             meaning: str = "") -> float:
    """``value`` as a finite float (> 0 with ``positive``, else >= 0): a number, or a string
    that is exactly one."""
    given = value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value.strip())
    ok = (not isinstance(value, bool) and isinstance(value, (int, float))
          and math.isfinite(value) and (value > 0 if positive else value >= 0))
    if not ok:
        kind = "a number > 0" if positive else "a number >= 0"
        raise ValueError(f"{owner}({name}={given!r}) is not allowed: {name} must be {kind}"
                         f"{meaning}")
    return float(value)


def to_bool(name: str, value: Any, *, owner: str = "Trainer") -> bool:
    """``value`` as a bool: a bool (numpy's too), 0 or 1, or one of ``SWITCH_WORDS``."""
    if isinstance(value, str):
        word = SWITCH_WORDS.get(value.strip().lower())
        if word is not None:
            return word
    elif isinstance(value, (bool, np.bool_)) or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    raise ValueError(f"{owner}({name}={value!r}) is not allowed: {name} is a switch; pass "
                     f"{ACCEPTED_SWITCHES}")


def check_trainer_switches(**switches: Any) -> dict[str, bool]:
    """The Trainer's on/off options as bools (module doc); returns them by name."""
    return {name: to_bool(name, value) for name, value in switches.items()}


def check_trainer_numbers(*, epochs: Any, batch_size: Any, lr: Any, accumulate: Any,
                          clip_grad_norm: Any, clip_grad_value: Any, steps_per_epoch: Any,
                          initial_epoch: Any, seed: Any) -> dict[str, Any]:
    """The Trainer's numeric options, checked and converted (module doc); returns them by
    name."""
    lr_value: Any = lr  # a tensor (or other object) goes to the optimizer, which checks it
    if isinstance(lr, (str, numbers.Real)) or lr is None:
        lr_value = to_float("lr", lr, meaning=" (the learning rate given to the optimizer)")
    return {
        "epochs": to_int("epochs", epochs, low=0),
        "batch_size": to_int("batch_size", batch_size, low=1),
        "lr": lr_value,
        "accumulate": to_int("accumulate", accumulate, low=1,
                             meaning=" (batches per optimizer step)"),
        "clip_grad_norm": None if clip_grad_norm is None else to_float(
            "clip_grad_norm", clip_grad_norm, positive=True,
            meaning=" (the largest total gradient norm kept; None turns clipping off)"),
        "clip_grad_value": None if clip_grad_value is None else to_float(
            "clip_grad_value", clip_grad_value, positive=True,
            meaning=" (the largest absolute gradient value kept; None turns clipping off)"),
        "steps_per_epoch": None if steps_per_epoch is None else to_int(
            "steps_per_epoch", steps_per_epoch, low=1, meaning=" (or None: the whole data)"),
        "initial_epoch": to_int("initial_epoch", initial_epoch, low=0),
        "seed": None if seed is None else to_int("seed", seed),
    }


def check_save_dir(save_dir: str | os.PathLike | None, owner: str = "Trainer",
                   option: str = "save_dir") -> None:
    """Raise when ``save_dir`` cannot hold the run's files: it is a file, lies under a file,
    or is not writable. It need not exist: the nearest folder that does must be writable.
    ``owner(option=...)`` is how the error names it (a checkpoint callback's folder)."""
    if save_dir is None:
        return
    if not isinstance(save_dir, (str, os.PathLike)) or not str(save_dir):
        raise TypeError(f"{owner}({option}={save_dir!r}) must be a folder path (str or Path), "
                        f"or None to write nothing")
    folder = Path(save_dir)
    where = f"{owner}({option}={str(save_dir)!r})"
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "is a file" if existing == folder else f"lies under {existing}, which is a file"
        raise NotADirectoryError(f"{where} {what}, not a folder; pass a folder path (it is "
                                 f"created when missing)")
    try:
        handle, probe = tempfile.mkstemp(prefix=".hookline-write-check-", dir=existing)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        target = "" if existing == folder else f" (it would be created in {existing})"
        raise PermissionError(f"{where} is not writable{target}: {reason}; choose a folder "
                              f"you can write to") from None
    os.close(handle)
    with contextlib.suppress(OSError):
        os.unlink(probe)
