"""Temporary files of atomic writes: named recognisably, tracked while live, cleaned when stale.

A write goes to ``.<name>.<pid>-<host>-<random>.hookline.tmp`` beside its target, then is
renamed over it. A process killed between the two leaves that file behind (as large as what it
had written); ``remove_stale_temps`` deletes such leftovers at the next start. It never deletes
a file that a live writer is writing:

* a temp file of this process is deleted only when no write of this process holds it (each
  write registers its temp file while it is open);
* one of another live process on this host (the pid in its name exists) is kept;
* one of a process that no longer exists on this host is deleted;
* one written on another host (a shared folder) is deleted only once it has not changed for
  ``FOREIGN_STALE_SECONDS``: its writer's pid cannot be checked from here.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["FOREIGN_STALE_SECONDS", "TEMP_SUFFIX", "is_temp_name", "live_temp", "new_temp_name",
           "remove_stale_temps"]

TEMP_SUFFIX = ".hookline.tmp"
FOREIGN_STALE_SECONDS = 3600.0
_HOST = hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:6]
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-(?P<host>[0-9a-f]{6})-[0-9a-f]{12}"
                   + re.escape(TEMP_SUFFIX) + "$")
_LEGACY = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{12}\.tmp$")  # hookline before this naming

# Names must be unique, not secret: a private generator seeded once from the OS spares the
# checkpoint writer's thread a getrandom() syscall per file, and with it a GIL handoff that the
# training loop pays for; the pid in the name keeps forked processes apart, O_EXCL the rest.
_NAMES = random.Random(secrets.randbits(64))

_LIVE: set[str] = set()
_LIVE_GUARD = threading.Lock()


def new_temp_name(target: Path) -> str:
    """A fresh temp file name beside ``target`` (the caller creates it with O_EXCL)."""
    return os.path.join(target.parent, f".{target.name}.{os.getpid()}-{_HOST}-"
                                        f"{_NAMES.getrandbits(48):012x}{TEMP_SUFFIX}")


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is one of hookline's temp files (this naming or the one before)."""
    return bool(_TEMP.match(name) or _LEGACY.match(name))


@contextlib.contextmanager
def live_temp(name: str) -> Iterator[None]:
    """Mark ``name`` as being written by this process while the block runs."""
    key = os.path.abspath(name)
    with _LIVE_GUARD:
        _LIVE.add(key)
    try:
        yield
    finally:
        with _LIVE_GUARD:
            _LIVE.discard(key)


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Delete the temp files killed writers left: every one in ``path`` when it is a folder,
    else those of the file ``path``. Returns what was deleted (see the module doc for what is
    kept)."""
    place = Path(path)
    folder, only = (place, None) if place.is_dir() else (place.parent, place.name)
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []  # no folder yet: nothing was left in it
    removed = []
    for entry in entries:
        if _is_stale(entry, only):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _is_stale(entry: os.DirEntry[str], only: str | None) -> bool:
    match = _TEMP.match(entry.name)
    if match is None:
        legacy = _LEGACY.match(entry.name)  # no pid in the name: only for a named file
        return legacy is not None and only is not None and legacy["name"] == only
    if only is not None and match["name"] != only:
        return False
    pid = int(match["pid"])
    if match["host"] != _HOST:
        try:
            return time.time() - entry.stat().st_mtime > FOREIGN_STALE_SECONDS
        except OSError:
            return False
    if pid == os.getpid():
        with _LIVE_GUARD:
            return os.path.abspath(entry.path) not in _LIVE
    return not _process_exists(pid)


def _process_exists(pid: int) -> bool:
    if os.name == "nt":
        return True  # os.kill would end the process there: keep the file, never guess
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    try:  # a killed child its parent has not reaped yet is a zombie: it writes nothing
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True
