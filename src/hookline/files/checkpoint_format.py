"""The full-checkpoint file format: magic line, JSON header, payload; verified and loaded safely.

On disk::

    HOOKLINE-CHECKPOINT\\n                                  magic line
    {"version": 1, "size": N, "sha256": "...", ...}\\n      one JSON header line
    N bytes                                                torch.save of the payload

The header is checked before anything is unpickled, so a truncated file, random bytes or a
damaged byte is reported (naming the file) and never reaches the unpickler. Loading uses
``torch.load(weights_only=True)``. This module knows files and tensors only: no trainer.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import struct
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from hookline.files.atomic import WRITE_CHUNK, atomic_write_bytes
from hookline.files.errors import (
    CheckpointError,
    CheckpointMismatchError,
    CheckpointVersionError,
    CorruptCheckpointError,
    UnsafeCheckpointError,
)
from hookline.files.framed import Frame

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "MAGIC", "check_loadable", "check_model_state",
           "file_chunks", "load_checkpoint", "load_weights", "read_checkpoint_info",
           "save_weights", "serialize_checkpoint", "verify_checkpoint", "write_checkpoint"]

FORMAT_NAME = "hookline.checkpoint"
FORMAT_VERSION = 1
MAGIC = b"HOOKLINE-CHECKPOINT\n"
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format: a weights file, not a full checkpoint
MODEL_MAGIC = b"HOOKLINE-MODEL\n"  # Model.save's files (hookline.saving)
CHECKPOINT_FRAME = Frame(
    MAGIC, "checkpoint", FORMAT_VERSION,
    unknown="is not a hookline checkpoint: it does not start with the HOOKLINE-CHECKPOINT "
            "header (random bytes, or another kind of file)",
    others=((_ZIP_MAGIC, ("is a plain torch.save file, not a hookline checkpoint; read "
                          "weights files with hookline.checkpoint.load_weights")),
            (MODEL_MAGIC, ("is a model file (Model.save), not a training checkpoint; load "
                           "it with hookline.load_model"))))


# --- weights files ------------------------------------------------------------------------
def save_weights(model: torch.nn.Module, path: str | os.PathLike,
                 extra: dict[str, Any] | None = None) -> Path:
    """Save a model's state_dict (and plain ``extra`` values) atomically with torch.save; a
    value that ``torch.load(weights_only=True)`` could not read is refused before writing."""
    payload = {"model": model.state_dict(), **(extra or {})}
    check_loadable(payload, "weights file")
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return atomic_write_bytes(buffer.getbuffer(), path)


def load_weights(path: str | os.PathLike, *, trusted: bool = False) -> dict[str, Any]:
    """Load what ``save_weights`` wrote (or a full checkpoint) with weights-only unpickling.

    ``trusted=True`` allows full unpickling: only for files you made yourself."""
    source = Path(path)
    with open(source, "rb") as file:
        start = file.read(len(MAGIC))
    if start == MAGIC:
        return load_checkpoint(source, trusted=trusted)
    if start.startswith(MODEL_MAGIC):
        raise CorruptCheckpointError(source, f"{source} is a model file (Model.save), not a "
                                     f"weights file; load it with hookline.load_model")
    try:
        return torch.load(source, map_location="cpu", weights_only=not trusted)
    except Exception as error:
        # a text file or random bytes fail anywhere in torch's unpickler (KeyError, an
        # unsupported opcode): only a file that starts as torch.save's can be unsafe, or
        # fail in the user's own classes (trusted=True)
        if start.startswith(_TORCH_SAVE_STARTS):
            if isinstance(error, pickle.UnpicklingError) and not trusted:
                raise _unpickling_error(source, error, trusted) from None
            if not isinstance(error, _DAMAGED):
                raise
        raise CorruptCheckpointError(source, f"{source} could not be read as a weights file "
                                     f"({_what_failed(error, start)}); it is truncated or not "
                                     f"a torch.save file") from error


_TORCH_SAVE_STARTS = (_ZIP_MAGIC, b"\x80")  # the zip format; the legacy one's pickle stream
_DAMAGED = (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, KeyError, IndexError,
            struct.error)


def _what_failed(error: BaseException, start: bytes) -> str:
    """The unpickler's error, and the file's first bytes when they are not torch.save's (a
    KeyError of 101 alone says nothing; b'hello worl' does)."""
    text = _first_line(error)
    what = text if text == type(error).__name__ else f"{type(error).__name__}: {text}"
    if start.startswith(_TORCH_SAVE_STARTS):
        return what
    return f"{what}; it starts with {start[:10]!r}"


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
              "Convert the value where it is made (the state_dict() that returns it, the "
              "callback that logs it): float(x), str(path), torch.as_tensor(array)...")


def serialize_checkpoint(payload: dict[str, Any]) -> memoryview:
    """``torch.save`` of a checked payload into memory: the snapshot is taken now, so later
    training steps cannot change what gets written."""
    check_loadable(payload)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getbuffer()


def file_chunks(body: memoryview, payload_run: dict[str, Any] | None) -> list[Any]:
    run = payload_run or {}
    return CHECKPOINT_FRAME.chunks(
        body, epoch=run.get("epoch"), step=run.get("step"), phase=run.get("phase"),
        batches_done=run.get("batches_done"), torch=str(torch.__version__),
        # whose run and which rank of how many: BackupAndRestore agrees on these across
        # ranks and finds another world size's backups without unpickling
        run_id=run.get("run_id"), rank=run.get("rank"),
        world_size=(run.get("args") or {}).get("world_size"))


def write_checkpoint(payload: dict[str, Any], path: str | os.PathLike, *,
                     previous: str | os.PathLike | None = None) -> Path:
    """Write a full checkpoint now (atomic, durable, with its checksum). Returns the path."""
    body = serialize_checkpoint(payload)
    return atomic_write_bytes(file_chunks(body, payload.get("run")), path, previous=previous)


# --- reading ------------------------------------------------------------------------------
def read_checkpoint_info(path: str | os.PathLike) -> dict[str, Any]:
    """The header of a full checkpoint (version, size, sha256, created_ns, epoch, step...),
    read without loading the payload. Raises CorruptCheckpointError for other files."""
    return CHECKPOINT_FRAME.read_info(path)


def verify_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Check a full checkpoint's header, size and SHA-256 checksum without unpickling it (the
    body is streamed, not held); returns the header. Raises what ``load_checkpoint`` raises
    for a damaged file."""
    source = Path(path)
    digest = hashlib.sha256()
    with open(source, "rb") as file:
        header = CHECKPOINT_FRAME.read_header(source, file)
        left = header["size"]
        while left:
            chunk = file.read(min(left, WRITE_CHUNK))
            if not chunk:
                break
            digest.update(chunk)
            left -= len(chunk)
        extra = file.read(1)
    CHECKPOINT_FRAME.check_body(source, header, header["size"] - left, bool(extra),
                                digest.hexdigest())
    return header


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
    _, body = CHECKPOINT_FRAME.read(source)
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


# what wrappers put before every key of the module they wrap: torch.compile's module, and
# DataParallel's / DistributedDataParallel's (checked in this order at each step)
WRAPPER_PREFIXES = {"_orig_mod.": "torch.compile", "module.": "DataParallel or "
                                                             "DistributedDataParallel"}


# torch.compile of a submodule (``model.encoder = torch.compile(model.encoder)``) puts its
# prefix inside the key; ``module.`` inside a key is as likely a user's own submodule's name
_COMPILED_SUBMODULE = "._orig_mod."


def _unwrapped_name(key: str) -> tuple[str, list[str]]:
    """``key`` without the wrapper prefixes it starts with (returned too) and without a
    compiled submodule's ``_orig_mod.`` inside it."""
    prefixes: list[str] = []
    while True:
        prefix = next((p for p in WRAPPER_PREFIXES if key.startswith(p)), None)
        if prefix is None:
            return key.replace(_COMPILED_SUBMODULE, "."), prefixes
        prefixes.append(prefix)
        key = key[len(prefix):]


def wrapper_renames(own: Iterable[str], keys: Iterable[str]) -> dict[str, str] | None:
    """``{key: model's key}`` when ``keys`` and the model's ``own`` keys differ only by
    wrapper prefixes (``_orig_mod.`` of torch.compile, also of a compiled submodule inside a
    key, ``module.`` of DataParallel and DDP), one to one and covering every key of the
    model; None when they do not (or need no renaming). Never a partial match: every key of
    both sides is accounted for."""
    own, keys = list(own), list(keys)
    if set(own) == set(keys):
        return None
    plain: dict[str, str] = {}
    for key in own:
        name = _unwrapped_name(key)[0]
        if name in plain:
            return None  # two of the model's keys alike once unwrapped: no safe renaming
        plain[name] = key
    renames = {}
    for key in keys:
        target = plain.get(_unwrapped_name(key)[0])
        if target is None:
            return None
        renames[key] = target
    if len(set(renames.values())) != len(renames) or set(renames.values()) != set(own):
        return None
    return renames


def _prefix_note(own: list[str], keys: list[str], renamed: bool) -> str:
    """For an error message: the wrapper prefix the checkpoint's keys carry and the model's do
    not (or the reverse); empty when there is none."""
    def prefixes(names: list[str]) -> set[str]:
        return {"".join(_unwrapped_name(name)[1]) for name in names} - {""}
    theirs, ours = prefixes(keys) - prefixes(own), prefixes(own) - prefixes(keys)
    if not (theirs or ours):
        return ""
    which = min(theirs or ours)
    wrappers = ", in ".join(WRAPPER_PREFIXES[p] for p in _unwrapped_name(which + "x")[1])
    side, other = ("the checkpoint's", "this model's") if theirs else (
        "this model's", "the checkpoint's")
    if renamed:
        return (f". {side.capitalize()} keys carry the prefix {which!r} ({wrappers}); they were "
                f"matched to {other} names, so the prefix is not what differs")
    return (f". {side.capitalize()} keys carry the prefix {which!r} ({wrappers}) that "
            f"{other} do not, and even without it the names do not match")


def check_model_state(model: torch.nn.Module, state: dict[str, Any],
                      path: str | os.PathLike | None = None) -> dict[str, Any]:
    """``state`` keyed by ``model``'s own names, ready for ``model.load_state_dict``; raise
    CheckpointMismatchError listing missing, unexpected and mis-shaped keys when it does not
    fit ``model``.

    Keys that differ from the model's only by a wrapper's prefix (``_orig_mod.`` of
    ``torch.compile``, of the model or of a submodule, ``module.`` of
    DataParallel/DistributedDataParallel, on either side) are renamed to the model's names,
    all of them or none: a state saved from a compiled or wrapped model loads into the plain
    one, and the reverse."""
    own = model.state_dict()
    renames = wrapper_renames(own, state)
    if renames is not None:
        state = {renames[key]: value for key, value in state.items()}
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    shapes = [f"{key} (checkpoint {tuple(state[key].shape)}, model {tuple(own[key].shape)})"
              for key in own if key in state and isinstance(state[key], torch.Tensor)
              and isinstance(own[key], torch.Tensor) and state[key].shape != own[key].shape]
    if not (missing or unexpected or shapes):
        return state
    note = _prefix_note(list(own), list(renames or state), renamed=renames is not None)
    parts = []
    for label, keys in (("shape mismatch", shapes), ("missing in checkpoint", missing),
                        ("not in model", unexpected)):
        if keys:
            shown = ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")
            parts.append(f"{label}: {shown}")
    where = f"checkpoint {path}" if path is not None else "the checkpoint"
    raise CheckpointMismatchError(
        path, f"{where} does not fit this model ({'; '.join(parts)}){note}. It was saved "
              f"from another model or another configuration of it; resume with the model it "
              f"was saved from")
