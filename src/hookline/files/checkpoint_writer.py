"""CheckpointWriter: full checkpoints and weights files written from a background thread."""

from __future__ import annotations

import io
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, cast

import torch

from hookline.files.atomic import atomic_write_bytes
from hookline.files.checkpoint_format import check_loadable, file_chunks
from hookline.files.errors import CheckpointWriteError, FileWriteError
from hookline.user_warning import warn

__all__ = ["SERIALIZE_IN_LOOP_BYTES", "CheckpointWriter"]

# A background save of at most this many tensor bytes is serialised in the loop, not in the
# writer's thread: torch.save needs the GIL, and for a small model the loop loses more waiting
# for the GIL to come back than serialising takes (a 13 KB model: 1.5 ms per save in all,
# against 1.9 ms with the serialisation in the thread; docs/architecture.md).
SERIALIZE_IN_LOOP_BYTES = 1 * 2**20


class _Snapshot:
    """A payload serialised once, as it is at the moment of the save: now, in the caller's
    thread, when its tensors are small (``SERIALIZE_IN_LOOP_BYTES``), else later by the
    writer's thread from copies of its tensors made now.

    Serialised now, the CPU tensors need no copy: ``torch.save`` reads them before the caller
    can change them. Tensors on another device are copied to the CPU either way, so a file
    loads on a machine without that device."""

    def __init__(self, payload: Any) -> None:
        self._body: memoryview | None = None
        self._error: Exception | None = None
        now = _tensor_bytes(payload) <= SERIALIZE_IN_LOOP_BYTES
        self._payload: Any = _copy_tensors(payload, {}, keep_cpu=now)
        if now:
            try:
                self.serialize()
            except Exception as error:  # noqa: BLE001 - raised where the thread's would be
                self._error = error

    def serialize(self) -> memoryview:
        if self._error is not None:  # the writer reports it by its on_error policy
            raise self._error
        if self._body is None:
            buffer = io.BytesIO()
            torch.save(self._payload, buffer)
            self._payload = None  # the copy is freed once serialised
            self._body = buffer.getbuffer()
        return self._body


def _tensor_key(tensor: torch.Tensor) -> tuple[Any, ...]:
    """What makes two entries the same tensor (tied weights), without reading its values."""
    if tensor.layout is not torch.strided:
        return (id(tensor),)
    return (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tensor.shape,
            tensor.stride(), tensor.dtype, tensor.device)


def _tensor_bytes(value: Any, seen: set[tuple[Any, ...]] | None = None) -> int:
    """The bytes of the distinct tensors in ``value`` (sparse ones counted as dense)."""
    seen = set() if seen is None else seen
    if isinstance(value, torch.Tensor):
        key = _tensor_key(value)
        if key in seen:
            return 0
        seen.add(key)
        return value.numel() * value.element_size()
    kind = type(value)
    if kind is dict or kind is OrderedDict:
        return sum(_tensor_bytes(sub, seen) for sub in value.values())
    if kind is list or kind is tuple or kind is set:
        return sum(_tensor_bytes(sub, seen) for sub in value)
    return 0


def _copy_tensors(value: Any, copies: dict[tuple[Any, ...], torch.Tensor] | None = None, *,
                  keep_cpu: bool = False) -> Any:
    """``value`` with its containers rebuilt and its tensors copied to CPU memory (with
    ``keep_cpu``, CPU tensors are only detached: for a payload serialised at once). Entries
    that are the same tensor (tied weights) stay one tensor, so the file holds them once."""
    if copies is None:
        copies = {}
    if isinstance(value, torch.Tensor):
        key = _tensor_key(value)
        copy = copies.get(key)
        if copy is None:
            detached = value.detach()
            copy = copies[key] = detached if keep_cpu and detached.device.type == "cpu" \
                else detached.to("cpu", copy=True)
        return copy
    kind = type(value)
    if kind is dict or kind is OrderedDict:
        copied = kind((key, _copy_tensors(sub, copies, keep_cpu=keep_cpu))
                      for key, sub in value.items())
        metadata = getattr(value, "_metadata", None)  # a state_dict's per-module versions
        if metadata is not None:
            cast(Any, copied)._metadata = metadata
        return copied
    if kind is list or kind is tuple or kind is set:
        return kind(_copy_tensors(sub, copies, keep_cpu=keep_cpu) for sub in value)
    return value  # numbers, strings, bytes, None: immutable


class CheckpointWriter:
    """Write full checkpoints from a background thread, so the loop does not wait for the disk.

    ``save`` first waits for this writer's previous write, then takes the snapshot in the
    calling thread (later steps cannot change what gets written) and hands it to a thread that
    checksums and writes it atomically. A payload over ``SERIALIZE_IN_LOOP_BYTES`` has its
    tensors copied to CPU memory and is serialised by the thread: a copy is about twice as fast
    as ``torch.save`` into memory, so the loop stalls half as long. A smaller one is serialised
    in the calling thread, straight from its tensors (no copy): for a small model that costs the
    loop less than the thread's need for the GIL does. At most one write is in flight (one
    snapshot held, plus its bytes while they are written); two writes to one file never
    overlap, whichever writer issues them.

    A failed write (disk full, permissions) leaves the previous file intact; its error surfaces
    at the next ``save`` or at ``wait``: raised as ``CheckpointWriteError`` with
    ``on_error="raise"`` (the run stops), warned with ``on_error="warn"`` (training continues).

    Example::

        writer = CheckpointWriter()
        writer.save(build_checkpoint(trainer), "ckpt/last.ckpt")  # returns at once
        writer.wait()  # at the end of the run: the file is on disk, or the error is raised
    """

    def __init__(self, *, background: bool = True,
                 on_error: Literal["raise", "warn"] = "raise") -> None:
        if on_error not in ("raise", "warn"):
            raise ValueError(f"on_error must be 'raise' or 'warn', got {on_error!r}")
        self.background = background
        self.on_error = on_error
        # one long-lived thread per writer (started at the first save): starting a thread per
        # save costs the loop more than the save itself for a small model
        self._executor: ThreadPoolExecutor | None = None
        self._pending: Future[None] | None = None
        self._error: tuple[Path, BaseException] | None = None
        self.last_path: Path | None = None
        self.failures = 0

    def save(self, payload: dict[str, Any], path: str | os.PathLike | Sequence[Any], *,
             previous: str | os.PathLike | None = None,
             then: Callable[[], None] | None = None) -> None:
        """Queue a checkpoint write (after the previous one finished). ``path`` may be several
        files of the same content; ``then`` runs once they are all on disk."""
        self.wait()
        check_loadable(payload)  # raised here, in the caller, before anything is queued
        later = _Snapshot(payload)
        run = payload.get("run")
        self._submit(lambda: file_chunks(later.serialize(), run), path, previous, then)

    def save_weights(self, model: torch.nn.Module, path: str | os.PathLike | Sequence[Any],
                     extra: dict[str, Any] | None = None, *,
                     then: Callable[[], None] | None = None) -> None:
        """``save_weights``'s file (plain torch.save of the state_dict), written in the
        background: copied now, on disk later (see the class doc for who serialises). A value
        that ``torch.load(weights_only=True)`` could not read is refused here, as in ``save``."""
        self.wait()
        payload = {"model": model.state_dict(), **(extra or {})}
        check_loadable(payload, "weights file")
        later = _Snapshot(payload)
        self._submit(lambda: [later.serialize()], path, None, then)

    def _submit(self, chunks: Callable[[], Any], path: str | os.PathLike | Sequence[Any],
                previous: str | os.PathLike | None, then: Callable[[], None] | None) -> None:
        if isinstance(path, (list, tuple)):
            targets = [Path(p) for p in path]
        else:  # a str or PathLike: a str is a Sequence too, so the isinstance above can't say
            targets = [Path(cast("str | os.PathLike[str]", path))]
        job = (chunks, targets, previous, then)
        if not self.background:
            self._write(*job)
            self._surface()
            return
        if self._executor is None:
            # its thread finishes a write in flight before the interpreter exits
            self._executor = ThreadPoolExecutor(max_workers=1,
                                                thread_name_prefix="hookline-checkpoint-writer")
        self._pending = self._executor.submit(self._write, *job)

    def wait(self) -> None:
        """Wait for the write in flight; raise or warn its error (see the class doc)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()  # _write keeps its error for _surface, so this does not raise
        self._surface()

    @property
    def busy(self) -> bool:
        """Whether a write is still in flight."""
        return self._pending is not None and not self._pending.done()

    def close(self) -> None:
        """Wait for the write in flight (raising its error) and stop the writer's thread."""
        try:
            self.wait()
        finally:
            executor, self._executor = self._executor, None
            if executor is not None:
                executor.shutdown(wait=True)

    def _write(self, chunks: Callable[[], Any], targets: list[Path],
               previous: str | os.PathLike | None, then: Callable[[], None] | None) -> None:
        target = targets[0]
        try:
            for target in targets:  # serialised, checksummed and headed here, off the loop
                atomic_write_bytes(chunks(), target, previous=previous)
                self.last_path = target
            if then is not None:
                then()
        except BaseException as error:  # noqa: BLE001 - handed to the training thread
            self._error = (target, error)

    def _surface(self) -> None:
        if self._error is None:
            return
        target, error = self._error
        self._error = None
        self.failures += 1
        kept = (f"The previous checkpoint is intact: {self.last_path}"
                if self.last_path is not None else
                "No earlier checkpoint was written by this writer")
        fix = "" if isinstance(error, FileWriteError) else \
            "; free disk space or choose another folder"  # a FileWriteError says its fix
        message = (f"checkpoint {target} could not be written: {type(error).__name__}: "
                   f"{error}. {kept}{fix}")
        if self.on_error == "warn":
            warn(message + "; training continues (on_write_error='warn')",
                 RuntimeWarning)
            return
        raise CheckpointWriteError(target, message) from error

