"""Checkpoint files: written atomically, loaded safely.

A checkpoint is written to a temporary file in the target folder, flushed and fsynced, then
renamed over the final name, and the folder is fsynced: a crash at any moment leaves either the
previous file or the new one, never half a file under the final name.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

__all__ = ["atomic_path", "atomic_write_bytes", "load_weights", "save_weights"]


def atomic_write_bytes(data: bytes, path: str | os.PathLike) -> Path:
    """Write ``data`` to ``path`` atomically and durably."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                         dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    _fsync_dir(target.parent)
    return target


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for a library that writes files itself; on
    success it is fsynced and renamed over ``path``, on failure removed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                         dir=target.parent)
    os.close(handle)
    try:
        yield Path(temp_name)
        with open(temp_name, "rb+") as file:
            os.fsync(file.fileno())
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    _fsync_dir(target.parent)


def save_weights(model: torch.nn.Module, path: str | os.PathLike,
                 extra: dict[str, Any] | None = None) -> Path:
    """Save a model's state_dict (and plain ``extra`` values) atomically with torch.save."""
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), **(extra or {})}, buffer)
    return atomic_write_bytes(buffer.getvalue(), path)


def load_weights(path: str | os.PathLike) -> dict[str, Any]:
    """Load what ``save_weights`` wrote, with weights-only (safe) unpickling."""
    return torch.load(path, map_location="cpu", weights_only=True)


def _fsync_dir(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some platforms cannot open folders; the rename is still atomic
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
