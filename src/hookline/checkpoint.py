"""Checkpoint files: written atomically, verified on load, loaded safely.

Two kinds of files:

* **weights files** (``save_weights`` / ``load_weights``): ``torch.save`` of
  ``{"model": state_dict, ...}``; plain ``torch.load`` reads them too.
* **full checkpoints** (``build_checkpoint`` -> ``write_checkpoint`` or ``CheckpointWriter``
  -> ``load_checkpoint`` -> ``hookline.resume.restore``): everything a run needs to continue
  exactly where it stopped. On disk a full checkpoint is::

      HOOKLINE-CHECKPOINT\\n                                  magic line
      {"version": 1, "size": N, "sha256": "...", ...}\\n      one JSON header line
      N bytes                                                torch.save of the payload

  The header is checked before anything is unpickled, so a truncated file, random bytes or a
  damaged byte is reported (naming the file) and never reaches the unpickler.

Every write goes to a temporary file in the target folder, is flushed and fsynced, renamed over
the final name, and the folder is fsynced: a crash at any moment leaves the previous file or the
new one, never half a file under the final name. Loading uses ``torch.load(weights_only=True)``:
only tensors and plain data come out of a file and no code in it runs. ``trusted=True`` is the
explicit opt-in to full unpickling, for files you made yourself.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import numbers
import os
import pickle
import secrets
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, cast

import torch

from hookline.rng import get_rng_state

__all__ = [
    "FORMAT_VERSION", "CheckpointError", "CheckpointMismatchError", "CheckpointVersionError",
    "CheckpointWriteError", "CheckpointWriter", "CorruptCheckpointError",
    "UnsafeCheckpointError", "atomic_path", "atomic_write_bytes", "build_checkpoint",
    "check_loadable", "check_model_state", "load_checkpoint", "load_weights",
    "read_checkpoint_info", "remove_stale_temps", "save_weights", "serialize_checkpoint",
    "verify_checkpoint", "write_checkpoint",
]

FORMAT_NAME = "hookline.checkpoint"
FORMAT_VERSION = 1
MAGIC = b"HOOKLINE-CHECKPOINT\n"
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format: a weights file, not a full checkpoint
MODEL_MAGIC = b"HOOKLINE-MODEL\n"  # Model.save's files (hookline.saving)
_MAX_HEADER = 64 * 1024
_WRITE_CHUNK = 8 * 1024 * 1024
# A background save of at most this many tensor bytes is serialised in the loop, not in the
# writer's thread: torch.save needs the GIL, and for a small model the loop loses more waiting
# for the GIL to come back than serialising takes (a 13 KB model: 1.5 ms per save in all,
# against 1.9 ms with the serialisation in the thread; docs/architecture.md).
SERIALIZE_IN_LOOP_BYTES = 1 * 2**20


# --- errors -------------------------------------------------------------------------------
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


# --- atomic, durable writes ---------------------------------------------------------------
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
    the last good file survives even if the new one later turns out to be damaged.
    """
    target = Path(path)
    chunks = [data] if isinstance(data, (bytes, bytearray, memoryview)) else list(data)
    with _lock_for(target):
        handle, temp_name = _create_temp(target)
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
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
            raise
        _fsync_dir(target.parent)
    return target


def _create_temp(target: Path) -> tuple[int, str]:
    """Create and open a new temporary file beside ``target`` (``.name.<random>.tmp``).

    Its mode is what any new file gets (0o666 less the umask, applied by the kernel), where
    ``tempfile.mkstemp`` would give 0o600: the file is renamed into place, so a results.png or
    a CSV rewritten on resume must stay readable like the files the user makes."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        name = os.path.join(target.parent, f".{target.name}.{secrets.token_hex(6)}.tmp")
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
                          f"names were taken; remove the stale .{target.name}.*.tmp files")


def _write_all(handle: int, chunk: bytes | bytearray | memoryview) -> None:
    view = memoryview(chunk).cast("B")
    while view:
        written = os.write(handle, view[:_WRITE_CHUNK])
        view = view[written:]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for a library that writes files itself; on
    success it is fsynced and renamed over ``path``, on failure removed."""
    target = Path(path)
    handle, temp_name = _create_temp(target)
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


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Delete temporary files a killed process left beside ``path`` (``.name.*.tmp``).

    Only call this for files no other live process is writing."""
    target = Path(path)
    if not target.parent.is_dir():
        return []
    removed = []
    for temp in target.parent.glob(f".{target.name}.*.tmp"):
        with contextlib.suppress(OSError):
            temp.unlink()
            removed.append(temp)
    return removed


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


# --- weights files ------------------------------------------------------------------------
def save_weights(model: torch.nn.Module, path: str | os.PathLike,
                 extra: dict[str, Any] | None = None) -> Path:
    """Save a model's state_dict (and plain ``extra`` values) atomically with torch.save."""
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), **(extra or {})}, buffer)
    return atomic_write_bytes(buffer.getbuffer(), path)


def load_weights(path: str | os.PathLike, *, trusted: bool = False) -> dict[str, Any]:
    """Load what ``save_weights`` wrote (or a full checkpoint) with weights-only unpickling.

    ``trusted=True`` allows full unpickling: only for files you made yourself."""
    source = Path(path)
    with open(source, "rb") as file:
        start = file.read(len(MAGIC))
    if start == MAGIC:
        return load_checkpoint(source, trusted=trusted)
    try:
        return torch.load(source, map_location="cpu", weights_only=not trusted)
    except pickle.UnpicklingError as error:
        raise _unpickling_error(source, error, trusted) from None
    except (RuntimeError, EOFError, ValueError) as error:
        raise CorruptCheckpointError(source, f"{source} could not be read as a weights file "
                                     f"({_first_line(error)}); it is truncated or not a "
                                     f"torch.save file") from error


# --- the full-checkpoint payload ----------------------------------------------------------
def build_checkpoint(trainer: Any, *, rng: dict[str, Any] | None = None,
                     keep_grads: bool = True, exact: bool = True,
                     note: str = "") -> dict[str, Any]:
    """Everything a Trainer needs to continue exactly where it is now, as a dict.

    Call it from a callback (after a batch, after an epoch, or when an exception arrives); the
    position recorded is "after the event being handled". It holds the model, the optimizer,
    ``trainer.lr_schedulers``, the grad scaler, every random generator, the run state (epoch,
    optimizer steps, batches done in the epoch, the epoch's losses so far, fitness, stop
    flags), what the data order depends on, pending accumulated gradients, and every stateful
    callback's ``state_dict()`` keyed by its ``state_key``.

    ``rng`` replaces the current generator states (``hookline.rng.get_rng_state()`` taken
    earlier: OnExceptionCheckpoint passes the states of the last batch boundary);
    ``keep_grads=False`` drops the gradients of a batch that did not finish; ``exact=False``
    with a ``note`` marks a checkpoint whose resume will not be bitwise equal to an
    uninterrupted run (the note is shown on resume).
    """
    rng = get_rng_state() if rng is None else rng
    losses = list(getattr(trainer, "epoch_losses", ()))
    phase = getattr(trainer, "phase", "train")
    phase = "epoch_done" if phase == "done" else phase  # after fit: its last epoch was done
    grads = {}
    if keep_grads:
        grads = {name: parameter.grad for name, parameter in trainer.model.named_parameters()
                 if parameter.grad is not None}
    scaler = getattr(trainer, "scaler", None)
    payload = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "lr_schedulers": [scheduler.state_dict()
                          for scheduler in getattr(trainer, "lr_schedulers", ())],
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": rng,
        "run": {
            "epoch": int(trainer.epoch),
            "epochs": int(trainer.epochs),
            "phase": phase,
            "batches_done": len(losses),
            "step": int(trainer.step),
            "epoch_losses": torch.stack(losses) if losses else torch.empty(0),
            "loss_names": [str(name) for name in getattr(trainer, "loss_names", ["loss"])],
            "epoch_rng": getattr(trainer, "epoch_rng_state", None),
            "train_metrics": _train_metric_state(getattr(trainer, "train_metric_set", None)),
            "metrics": {str(key): _plain(value) for key, value in trainer.metrics.items()},
            "fitness": _plain(trainer.fitness),
            "best_fitness": _plain(trainer.best_fitness),
            "stop": bool(trainer.stop),
            "stop_reason": str(trainer.stop_reason or ""),
            "skip_rest_of_epoch": bool(getattr(trainer, "skip_rest_of_epoch", False)),
            "grads": grads,
            "exact": bool(exact),
            "note": note,
        },
        "data": _data_fingerprint(trainer),
        "callbacks": trainer.callbacks.state_dict(),
        "input_signature": getattr(trainer, "input_signature", None),  # hookline.signature
        "meta": {"torch": str(torch.__version__), "created": time.time()},
    }
    return payload


def _plain(value: Any) -> Any:
    """Numbers as Python numbers (a numpy float would need full unpickling)."""
    if isinstance(value, bool) or value is None or isinstance(value, torch.Tensor):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return value


def _train_metric_state(metric_set: Any) -> dict[str, Any] | None:
    return metric_set.state_dict() if metric_set is not None else None


def _data_fingerprint(trainer: Any) -> dict[str, Any]:
    """What the order of the training batches depends on, to check it on resume."""
    data = trainer.train_data
    if hasattr(data, "tensors") and hasattr(data, "order"):  # ArrayBatches
        return {"kind": "arrays", "size": int(data.size), "batch_size": int(data.batch_size),
                "shuffle": bool(data.shuffle), "seed": int(data.seed),
                "drop_last": bool(data.drop_last), "world": int(getattr(data, "world", 1))}
    try:
        length: int | None = len(data)
    except TypeError:
        length = None
    return {"kind": "iterable", "batches": length}


# --- serialising and writing --------------------------------------------------------------
_PLAIN_TYPES = frozenset({type(None), bool, int, float, complex, str, bytes, bytearray,
                          torch.Size, torch.dtype, torch.device})


def check_loadable(value: Any, where: str = "checkpoint") -> None:
    """Raise TypeError naming the first part of ``value`` that weights-only unpickling would
    refuse, so a checkpoint that cannot be loaded safely is never written."""
    stack = [(value, where)]
    while stack:
        item, at = stack.pop()
        kind = type(item)
        if kind in _PLAIN_TYPES or isinstance(item, torch.Tensor):
            continue
        if kind is dict or kind is OrderedDict:
            for key, sub in item.items():
                if type(key) not in _PLAIN_TYPES:
                    raise TypeError(f"{at} has a key of type {type(key).__qualname__} "
                                    f"({key!r}); {_SAFE_HINT}")
                stack.append((sub, f"{at}[{key!r}]"))
        elif kind is list or kind is tuple or kind is set:
            stack.extend((sub, f"{at}[{i}]") for i, sub in enumerate(item))
        else:
            raise TypeError(f"{at} is a {kind.__module__}.{kind.__qualname__} ({item!r:.60}); "
                            f"{_SAFE_HINT}")


_SAFE_HINT = ("a checkpoint holds only tensors, numbers, strings, bytes, None and lists, tuples, "
              "sets and dicts of them, so that it loads with weights-only (safe) unpickling. "
              "Convert the value in the state_dict() that returns it (float(x), str(path), "
              "torch.as_tensor(array)...)")


def serialize_checkpoint(payload: dict[str, Any]) -> memoryview:
    """``torch.save`` of a checked payload into memory: the snapshot is taken now, so later
    training steps cannot change what gets written."""
    check_loadable(payload)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getbuffer()


def _file_chunks(body: memoryview, payload_run: dict[str, Any] | None) -> list[Any]:
    run = payload_run or {}
    header = {"version": FORMAT_VERSION, "size": len(body),
              "sha256": hashlib.sha256(body).hexdigest(), "created_ns": time.time_ns(),
              "epoch": run.get("epoch"), "step": run.get("step"), "phase": run.get("phase"),
              "batches_done": run.get("batches_done"), "torch": str(torch.__version__)}
    return [MAGIC, json.dumps(header).encode("utf-8") + b"\n", body]


def write_checkpoint(payload: dict[str, Any], path: str | os.PathLike, *,
                     previous: str | os.PathLike | None = None) -> Path:
    """Write a full checkpoint now (atomic, durable, with its checksum). Returns the path."""
    body = serialize_checkpoint(payload)
    return atomic_write_bytes(_file_chunks(body, payload.get("run")), path, previous=previous)


class _Snapshot:
    """A payload whose tensors are copied to CPU memory now and serialised once: now too when
    they are small (``SERIALIZE_IN_LOOP_BYTES``), else later, by the writer's thread."""

    def __init__(self, payload: Any) -> None:
        copies: dict[tuple[Any, ...], torch.Tensor] = {}
        self._payload: Any = _copy_tensors(payload, copies)
        self._body: memoryview | None = None
        self._error: Exception | None = None
        size = sum(copy.numel() * copy.element_size() for copy in copies.values())  # sparse too
        if size <= SERIALIZE_IN_LOOP_BYTES:
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


def _copy_tensors(value: Any, copies: dict[tuple[Any, ...], torch.Tensor] | None = None) -> Any:
    """``value`` with its containers rebuilt and its tensors copied to CPU memory. Entries that
    are the same tensor (tied weights) stay one tensor, so the file holds them once."""
    if copies is None:
        copies = {}
    if isinstance(value, torch.Tensor):
        key = ((value.untyped_storage().data_ptr(), value.storage_offset(), value.shape,
                value.stride(), value.dtype, value.device)
               if value.layout is torch.strided else (id(value),))
        copy = copies.get(key)
        if copy is None:
            copy = copies[key] = value.detach().to("cpu", copy=True)
        return copy
    kind = type(value)
    if kind is dict or kind is OrderedDict:
        copied = kind((key, _copy_tensors(sub, copies)) for key, sub in value.items())
        metadata = getattr(value, "_metadata", None)  # a state_dict's per-module versions
        if metadata is not None:
            cast(Any, copied)._metadata = metadata
        return copied
    if kind is list or kind is tuple or kind is set:
        return kind(_copy_tensors(sub, copies) for sub in value)
    return value  # numbers, strings, bytes, None: immutable


class CheckpointWriter:
    """Write full checkpoints from a background thread, so the loop does not wait for the disk.

    ``save`` first waits for this writer's previous write, then copies the payload's tensors to
    CPU memory in the calling thread (the snapshot is taken now: later steps cannot change what
    gets written) and hands the copy to a thread that serialises, checksums and writes it
    atomically. A copy is about twice as fast as ``torch.save`` into memory, so the loop stalls
    half as long. A copy under ``SERIALIZE_IN_LOOP_BYTES`` is serialised in the calling thread
    too: for a small model that costs the loop less than the thread's need for the GIL does.
    At most one write is in flight (one copy held, plus its bytes while they
    are written); two writes to one file never overlap, whichever writer issues them.

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
        self._submit(lambda: _file_chunks(later.serialize(), run), path, previous, then)

    def save_weights(self, model: torch.nn.Module, path: str | os.PathLike | Sequence[Any],
                     extra: dict[str, Any] | None = None, *,
                     then: Callable[[], None] | None = None) -> None:
        """``save_weights``'s file (plain torch.save of the state_dict), written in the
        background: copied now, on disk later (see the class doc for who serialises)."""
        self.wait()
        later = _Snapshot({"model": model.state_dict(), **(extra or {})})
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
        message = (f"checkpoint {target} could not be written: {type(error).__name__}: "
                   f"{error}. The previous checkpoint is intact; free disk space or choose "
                   f"another folder")
        if self.on_error == "warn":
            warnings.warn(message + "; training continues (on_write_error='warn')",
                          RuntimeWarning, stacklevel=3)
            return
        raise CheckpointWriteError(target, message) from error


# --- reading ------------------------------------------------------------------------------
def read_checkpoint_info(path: str | os.PathLike) -> dict[str, Any]:
    """The header of a full checkpoint (version, size, sha256, created_ns, epoch, step...),
    read without loading the payload. Raises CorruptCheckpointError for other files."""
    source = Path(path)
    with open(source, "rb") as file:
        return _read_header(source, file)


def _read_header(source: Path, file: Any) -> dict[str, Any]:
    start = file.read(len(MAGIC))
    if start != MAGIC:
        if not start:
            problem = "is empty (0 bytes)"
        elif start.startswith(_ZIP_MAGIC):
            problem = ("is a plain torch.save file, not a hookline checkpoint; read weights "
                       "files with hookline.checkpoint.load_weights")
        elif start.startswith(MODEL_MAGIC):
            problem = ("is a model file (Model.save), not a training checkpoint; load it "
                       "with hookline.load_model")
        else:
            problem = ("is not a hookline checkpoint: it does not start with the "
                       "HOOKLINE-CHECKPOINT header (random bytes, or another kind of file)")
        raise CorruptCheckpointError(source, f"checkpoint {source} {problem}")
    line = file.readline(_MAX_HEADER)
    try:
        header = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        header = None
    if not isinstance(header, dict) or not isinstance(header.get("version"), int):
        raise CorruptCheckpointError(source, f"checkpoint {source} has a damaged header "
                                     f"line; the file is corrupt")
    if header["version"] > FORMAT_VERSION:
        raise CheckpointVersionError(
            source, f"checkpoint {source} has format version {header['version']}, newer than "
                    f"this hookline reads (up to {FORMAT_VERSION}): it was written by a newer "
                    f"hookline; upgrade hookline to load it")
    if not isinstance(header.get("size"), int) or header["size"] < 0 or \
            not isinstance(header.get("sha256"), str):
        raise CorruptCheckpointError(source, f"checkpoint {source} has a damaged header "
                                     f"(no size or checksum); the file is corrupt")
    return header


def verify_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Check a full checkpoint's header, size and SHA-256 checksum without unpickling it (the
    body is streamed, not held); returns the header. Raises what ``load_checkpoint`` raises
    for a damaged file."""
    source = Path(path)
    digest = hashlib.sha256()
    with open(source, "rb") as file:
        header = _read_header(source, file)
        left = header["size"]
        while left:
            chunk = file.read(min(left, _WRITE_CHUNK))
            if not chunk:
                break
            digest.update(chunk)
            left -= len(chunk)
        extra = file.read(1)
    _check_body(source, header, header["size"] - left, bool(extra), digest.hexdigest())
    return header


def _check_body(source: Path, header: dict[str, Any], size: int, extra: bool,
                sha256: str) -> None:
    if size < header["size"]:
        raise CorruptCheckpointError(
            source, f"checkpoint {source} is truncated: its header announces {header['size']} "
                    f"bytes of content but only {size} follow (the write was interrupted "
                    f"or the copy is incomplete)")
    if extra:
        raise CorruptCheckpointError(source, f"checkpoint {source} has bytes after its "
                                     f"announced end; the file is corrupt")
    if sha256 != header["sha256"]:
        raise CorruptCheckpointError(
            source, f"checkpoint {source} is corrupt: its content does not match the SHA-256 "
                    f"checksum in its header (it was damaged after it was written)")


def load_checkpoint(path: str | os.PathLike, *, trusted: bool = False,
                    map_location: Any = "cpu") -> dict[str, Any]:
    """Read and verify a full checkpoint; returns the payload of ``build_checkpoint``.

    Checks, in order, each raising an error that names the file: the magic line (random bytes,
    another kind of file), the format version (``CheckpointVersionError`` for a newer one),
    the size (truncated), the SHA-256 checksum (damaged), then unpickles with
    ``weights_only=True`` (``UnsafeCheckpointError`` if the file holds code-running objects).
    ``trusted=True`` unpickles everything: only for files you made yourself.
    """
    source = Path(path)
    if source.is_dir():
        raise IsADirectoryError(f"{source} is a folder; pass a checkpoint file, or use "
                                f"Trainer(resume='{source}') to pick the newest one in it")
    with open(source, "rb") as file:
        header = _read_header(source, file)
        body = file.read(header["size"])
        extra = file.read(1)
    _check_body(source, header, len(body), bool(extra), hashlib.sha256(body).hexdigest())
    try:
        payload = torch.load(io.BytesIO(body), map_location=map_location,
                             weights_only=not trusted)
    except pickle.UnpicklingError as error:
        raise _unpickling_error(source, error, trusted) from None
    except Exception as error:  # a verified file that still does not unpickle
        raise CorruptCheckpointError(source, f"checkpoint {source} could not be unpickled "
                                     f"({type(error).__name__}: {_first_line(error)})") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise CorruptCheckpointError(source, f"checkpoint {source} does not hold a hookline "
                                     f"payload (no format marker)")
    if payload.get("version", 0) > FORMAT_VERSION:
        raise CheckpointVersionError(source, f"checkpoint {source} has payload version "
                                     f"{payload['version']}, newer than this hookline reads "
                                     f"(up to {FORMAT_VERSION}); upgrade hookline")
    return payload


def _unpickling_error(source: Path, error: Exception, trusted: bool) -> CheckpointError:
    if trusted:
        return CorruptCheckpointError(source, f"checkpoint {source} could not be unpickled "
                                      f"({_first_line(error)})")
    return UnsafeCheckpointError(
        source, f"refused to load {source}: it holds objects that weights-only unpickling "
                f"does not allow, which could run code when loaded ({_first_line(error)}). "
                f"hookline never writes such files. If you made this file yourself and trust "
                f"it, load it with trusted=True (load_checkpoint(path, trusted=True), then "
                f"Trainer(resume=payload))")


def _first_line(error: BaseException) -> str:
    text = str(error).replace("\x1b[1m", "").replace("\x1b[0m", "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    unsupported = [line for line in lines if "Unsupported global" in line
                   or "unsupported" in line.lower()]
    return (unsupported or lines or [type(error).__name__])[0][:300]


def check_model_state(model: torch.nn.Module, state: dict[str, Any],
                      path: str | os.PathLike | None = None) -> None:
    """Raise CheckpointMismatchError listing missing, unexpected and mis-shaped keys when
    ``state`` does not fit ``model``."""
    own = model.state_dict()
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    shapes = [f"{key} (checkpoint {tuple(state[key].shape)}, model {tuple(own[key].shape)})"
              for key in own if key in state and isinstance(state[key], torch.Tensor)
              and isinstance(own[key], torch.Tensor) and state[key].shape != own[key].shape]
    if not (missing or unexpected or shapes):
        return
    parts = []
    for label, keys in (("shape mismatch", shapes), ("missing in checkpoint", missing),
                        ("not in model", unexpected)):
        if keys:
            shown = ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")
            parts.append(f"{label}: {shown}")
    where = f"checkpoint {path}" if path is not None else "the checkpoint"
    raise CheckpointMismatchError(
        path, f"{where} does not fit this model ({'; '.join(parts)}). It was saved from "
              f"another model or another configuration of it; resume with the model it was "
              f"saved from")
