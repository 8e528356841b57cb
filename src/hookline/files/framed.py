"""The framing hookline's own files share (full checkpoints, model files), written and checked
in one place.

On disk::

    MAGIC\\n                                              which kind of file this is
    {"version": 1, "size": N, "sha256": "...", ...}\\n    one JSON header line
    N bytes                                              the body

Reading checks the magic line, the header, the body's size and its SHA-256 before the body
reaches an unpickler; each failure is a ``CorruptCheckpointError`` (or a
``CheckpointVersionError`` for a newer format) that names the file and says what it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from hookline.files.errors import CheckpointVersionError, CorruptCheckpointError

__all__ = ["Frame"]

_MAX_HEADER = 64 * 1024


@dataclass(frozen=True)
class Frame:
    """One kind of framed file: its magic line, what to call it in an error, the newest format
    version this hookline reads, and what to say of a file that starts otherwise."""

    magic: bytes
    kind: str  # "checkpoint", "model file": how errors name the file
    version: int
    unknown: str  # what a file with no known start is
    others: tuple[tuple[bytes, str], ...] = ()  # (the start of another kind, what it is)

    def chunks(self, body: memoryview, **fields: Any) -> list[Any]:
        """The file's parts, for ``atomic_write_bytes``: the magic line, the header (version,
        size, checksum, time written, then ``fields``) and the body."""
        header = {"version": self.version, "size": len(body),
                  "sha256": hashlib.sha256(body).hexdigest(), "created_ns": time.time_ns(),
                  **fields}
        return [self.magic, json.dumps(header).encode("utf-8") + b"\n", body]

    def read_info(self, path: str | os.PathLike) -> dict[str, Any]:
        """The header of the file at ``path``, read without the body."""
        source = Path(path)
        with open(source, "rb") as file:
            return self.read_header(source, file)

    def read_header(self, source: Path, file: BinaryIO) -> dict[str, Any]:
        """Read the magic and header lines of ``file`` (opened from ``source``), checked."""
        start = file.read(len(self.magic))
        if start != self.magic:
            longest = max((len(prefix) for prefix, _ in self.others), default=0)
            start += file.read(max(0, longest - len(start)))
            problem = "is empty (0 bytes)" if not start else next(
                (what for prefix, what in self.others if start.startswith(prefix)), self.unknown)
            raise CorruptCheckpointError(source, f"{self.kind} {source} {problem}")
        try:
            header = json.loads(file.readline(_MAX_HEADER).decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            header = None
        if not isinstance(header, dict) or not isinstance(header.get("version"), int):
            raise CorruptCheckpointError(source, f"{self.kind} {source} has a damaged header "
                                         f"line; the file is corrupt")
        if header["version"] > self.version:
            raise CheckpointVersionError(
                source, f"{self.kind} {source} has format version {header['version']}, newer "
                        f"than this hookline reads (up to {self.version}): it was written by a "
                        f"newer hookline; upgrade hookline to load it")
        if not isinstance(header.get("size"), int) or header["size"] < 0 or \
                not isinstance(header.get("sha256"), str):
            raise CorruptCheckpointError(source, f"{self.kind} {source} has a damaged header "
                                         f"(no size or checksum); the file is corrupt")
        return header

    def read(self, source: Path) -> tuple[dict[str, Any], bytes]:
        """The header and the body of the file at ``source``, both checked."""
        with open(source, "rb") as file:
            header = self.read_header(source, file)
            body = file.read(header["size"])
            extra = file.read(1)
        self.check_body(source, header, len(body), bool(extra), hashlib.sha256(body).hexdigest())
        return header, body

    def check_body(self, source: Path, header: dict[str, Any], size: int, extra: bool,
                   sha256: str) -> None:
        """Raise for a body shorter than its header says, followed by more bytes, or whose
        checksum differs."""
        if size < header["size"]:
            raise CorruptCheckpointError(
                source, f"{self.kind} {source} is truncated: its header announces "
                        f"{header['size']} bytes of content but only {size} follow (the write "
                        f"was interrupted or the copy is incomplete)")
        if extra:
            raise CorruptCheckpointError(source, f"{self.kind} {source} has bytes after its "
                                         f"announced end; the file is corrupt")
        if sha256 != header["sha256"]:
            raise CorruptCheckpointError(
                source, f"{self.kind} {source} is corrupt: its content does not match the "
                        f"SHA-256 checksum in its header (it was damaged after it was written)")
