"""A metric value as a plain Python number, whatever put it in ``trainer.metrics``.

A callback may add a metric as a numpy scalar (``array.mean()``) or a 0-d tensor
(``weight.norm()``); every logger must write it, not only the CSV. Booleans are flags, not
numbers, and are left out.
"""

from __future__ import annotations

from typing import Any

__all__ = ["plain_number"]


def plain_number(value: Any) -> int | float | None:
    """``value`` as an int or float when it is a number (Python, numpy or a 0-d tensor), else
    None."""
    if getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)):
        value = value.item()  # a 0-d tensor or a numpy scalar
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return None
