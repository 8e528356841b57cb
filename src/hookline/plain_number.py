"""Metric values as plain Python numbers, whatever put them in ``trainer.metrics``.

A callback may add a metric as a numpy scalar (``array.mean()``) or a 0-d tensor
(``weight.norm()``); every logger must write it, not only the CSV. Booleans are flags, not
numbers, and are left out.
"""

from __future__ import annotations

from typing import Any

__all__ = ["as_python", "plain_number"]


def as_python(value: Any) -> Any:
    """A numpy scalar, 0-d numpy array or 0-d tensor as the Python value it holds (Keras code
    logs numpy values, and a checkpoint holding one needs full unpickling); anything else as
    it is."""
    if getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)):
        return value.item()
    return value


def plain_number(value: Any) -> int | float | None:
    """``value`` as an int or float when it is a number (Python, numpy or a 0-d tensor), else
    None."""
    value = as_python(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return None
