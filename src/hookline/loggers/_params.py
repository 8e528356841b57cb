"""The run's options (``trainer.args``) as plain values for experiment trackers."""

from __future__ import annotations

from typing import Any

__all__ = ["run_params"]


def run_params(args: Any) -> dict[str, Any]:
    """``vars(args)`` with every value a str, int, float, bool or None (paths, devices and
    other objects become their text), sorted by name."""
    params: dict[str, Any] = {}
    for name, value in sorted(vars(args).items()):
        if isinstance(value, (str, int, float, bool)) or value is None:
            params[name] = value
        elif isinstance(value, (list, tuple)) and all(
                isinstance(item, (str, int, float, bool)) for item in value):
            params[name] = list(value)
        else:
            params[name] = str(value)
    return params
