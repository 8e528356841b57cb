"""The one exception type the command line prints as a single line (exit status 2)."""

from __future__ import annotations

__all__ = ["UsageError"]


class UsageError(ValueError):
    """A command-line mistake: printed without a traceback, exit status 2."""
