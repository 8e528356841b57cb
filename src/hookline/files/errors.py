"""The errors of checkpoint files: each names the file it is about."""

from __future__ import annotations

import errno
import os
from pathlib import Path

__all__ = ["CheckpointError", "CheckpointMismatchError", "CheckpointVersionError",
           "CheckpointWriteError", "CorruptCheckpointError", "FileWriteError",
           "UnsafeCheckpointError"]


class CheckpointError(Exception):
    """A checkpoint file could not be used; ``path`` names it."""

    def __init__(self, path: str | os.PathLike | None, message: str) -> None:
        super().__init__(message)
        self.path = Path(path) if path is not None else None


class CorruptCheckpointError(CheckpointError):
    """Truncated, damaged, empty, or not a hookline checkpoint at all."""


class CheckpointVersionError(CheckpointError):
    """Written in a newer format than this hookline reads."""


class CheckpointMismatchError(CheckpointError):
    """Holds the state of another model or another run configuration."""


class UnsafeCheckpointError(CheckpointError):
    """Holds objects that weights-only unpickling refuses (they could run code)."""


class CheckpointWriteError(CheckpointError):
    """A write failed (disk full, permissions...); the previous file is intact."""


class FileWriteError(OSError):
    """An atomic write failed (disk full, permissions...); the message names the file and what
    was kept. An OSError with the original errno, so ``except OSError`` still catches it."""

    def __init__(self, code: int | None, message: str, path: Path) -> None:
        super().__init__(code, message)
        self.filename = str(path)
        self.message = message

    def __str__(self) -> str:
        return self.message

    @classmethod
    def of(cls, target: Path, error: OSError,
           previous: str | os.PathLike | None = None) -> FileWriteError:
        """The error for ``target`` whose write raised ``error``; the temp file is gone."""
        reason = error.strerror or str(error) or type(error).__name__
        if target.exists():
            kept = f"{target} still holds its previous version, unchanged"
        elif previous is not None and Path(previous).exists():
            kept = f"its previous version is kept as {previous}"
        else:
            kept = f"nothing was written under that name (there was no {target.name} before)"
        fix = ("free disk space or choose another folder" if error.errno == errno.ENOSPC
               else "check the folder exists and is writable")
        return cls(error.errno, f"could not write {target}: {reason} (errno "
                                f"{errno.errorcode.get(error.errno or 0, error.errno)}); {kept}; "
                                f"{fix}", target)
