"""Atomic, durable file writes: temp file beside the target, fsync, rename, fsync the folder.

A crash at any moment leaves the previous file or the new one under the final name, never
half a file. This module knows files only: no model, no trainer.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from hookline.files.errors import FileWriteError
from hookline.files.temp_files import live_temp, new_temp_name, remove_stale_temps

__all__ = ["WRITE_CHUNK", "atomic_path", "atomic_write_bytes", "fsync_dir", "remove_stale_temps"]

WRITE_CHUNK = 8 * 1024 * 1024

_PATH_LOCKS: dict[str, threading.Lock] = {}
_PATH_LOCKS_GUARD = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    """One lock per file: two writes never race one file, whichever writer issues them."""
    key = os.path.abspath(path)
    with _PATH_LOCKS_GUARD:
        return _PATH_LOCKS.setdefault(key, threading.Lock())


def atomic_write_bytes(data: bytes | memoryview | Sequence[bytes | memoryview],
                       path: str | os.PathLike, *,
                       previous: str | os.PathLike | None = None) -> Path:
    """Write ``data`` (bytes, or a sequence of byte chunks) to ``path`` atomically and durably.

    With ``previous``, the file ``path`` held is renamed there once the new one is complete, so
    the last good file survives even if the new one later turns out to be damaged. A failure
    (a full disk) raises ``FileWriteError``, an OSError naming the file and what was kept.
    """
    target = Path(path)
    chunks = [data] if isinstance(data, (bytes, bytearray, memoryview)) else list(data)
    with _lock_for(target):
        handle, temp_name = _create_temp(target)
        with live_temp(temp_name):
            try:
                try:
                    for chunk in chunks:
                        _write_all(handle, chunk)
                    os.fsync(handle)
                finally:
                    os.close(handle)
                if previous is not None and target.exists():
                    os.replace(target, previous)
                os.replace(temp_name, target)
            except BaseException as error:
                with contextlib.suppress(OSError):
                    os.unlink(temp_name)
                if isinstance(error, OSError):
                    raise FileWriteError.of(target, error, previous) from error
                raise
        fsync_dir(target.parent)
    return target


def _create_temp(target: Path) -> tuple[int, str]:
    """Create and open a new temporary file beside ``target`` (``hookline.files.temp_files``
    names it).

    Its mode is what any new file gets (0o666 less the umask, applied by the kernel), where
    ``tempfile.mkstemp`` would give 0o600: the file is renamed into place, so a results.png or
    a CSV rewritten on resume must stay readable like the files the user makes."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        name = new_temp_name(target)
        try:
            return os.open(name, flags, 0o666), name
        except FileExistsError:
            continue
        except FileNotFoundError:
            # the folder is made when missing, not checked before every write: from the
            # writer's thread each syscall costs the loop a handoff of the GIL
            target.parent.mkdir(parents=True, exist_ok=True)
            return os.open(name, flags, 0o666), name
    raise FileExistsError(f"could not create a temporary file beside {target}: 100 random "
                          f"names were taken")


def _write_all(handle: int, chunk: bytes | bytearray | memoryview) -> None:
    view = memoryview(chunk).cast("B")
    while view:
        written = os.write(handle, view[:WRITE_CHUNK])
        view = view[written:]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for a library that writes files itself; on
    success it is fsynced and renamed over ``path``, on failure removed."""
    target = Path(path)
    handle, temp_name = _create_temp(target)
    os.close(handle)
    with live_temp(temp_name):
        try:
            yield Path(temp_name)
            with open(temp_name, "rb+") as file:
                os.fsync(file.fileno())
            os.replace(temp_name, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
            raise
    fsync_dir(target.parent)


def fsync_dir(folder: Path) -> None:
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

