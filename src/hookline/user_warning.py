"""Warnings that name the user's line, however deep in hookline they are raised."""

from __future__ import annotations

import contextlib
import sys
import warnings
from pathlib import Path
from types import FrameType

_PACKAGE = str(Path(__file__).resolve().parent)
# frames skipped on the way up: the engine's, and contextlib's, the glue of its ``with`` blocks
_SKIPPED = (_PACKAGE, contextlib.__file__)


def warn(message: str, category: type[Warning] = RuntimeWarning) -> None:
    """``warnings.warn`` at the first caller outside hookline and contextlib (what Python
    3.12's ``skip_file_prefixes`` does; 3.11 lacks it): a fixed ``stacklevel`` names whichever
    engine module happens to sit that many calls up, which changes with the path taken."""
    frame: FrameType | None = sys._getframe(1)
    level = 2  # the caller of this function
    while frame is not None and frame.f_code.co_filename.startswith(_SKIPPED):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level if frame is not None else 2)
