"""Weights as safetensors files: ``Model.save_weights(path)`` / ``Model.load_weights(path)``.

safetensors holds only tensors (no pickle, nothing can run when it is read) and every
framework reads it. It refuses tensors that share memory, so a weight tied under two names
(a shared embedding and output layer) is written once and the second name is kept in the
file's metadata (``hookline.aliases``); loading restores both names.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from hookline.checkpoint import CheckpointMismatchError, CorruptCheckpointError, atomic_write_bytes

__all__ = ["load_safetensors", "save_safetensors"]

_ALIASES = "hookline.aliases"


def _safetensors() -> Any:
    try:
        import safetensors.torch
    except ImportError:
        raise ImportError("save_weights/load_weights write safetensors files and need the "
                          "safetensors package: pip install 'hookline[export]'") from None
    return safetensors.torch


def save_safetensors(module: torch.nn.Module, path: str | os.PathLike) -> Path:
    """Write ``module``'s state_dict (parameters and buffers) to ``path``, atomically."""
    library = _safetensors()
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple[Any, ...], str] = {}
    storages: set[int] = set()
    for name, value in module.state_dict().items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"save_weights: {name} is a {type(value).__name__}, not a tensor; "
                            f"a safetensors file holds tensors only")
        tensor = value.detach()
        identity = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(),
                    tuple(tensor.shape), tensor.stride(), tensor.dtype)
        if tensor.numel() and identity in seen:
            aliases[name] = seen[identity]  # the same tensor under a second name (tied)
            continue
        storage = tensor.untyped_storage().data_ptr()
        if tensor.numel() and storage in storages:
            tensor = tensor.clone()  # a view into another weight: stored as its own copy
        storages.add(storage)
        seen[identity] = name
        tensors[name] = tensor.cpu().contiguous()
    metadata = {"format": "pt", _ALIASES: json.dumps(aliases)}
    return atomic_write_bytes(library.save(tensors, metadata=metadata), path)


def load_safetensors(module: torch.nn.Module, path: str | os.PathLike) -> None:
    """Load a safetensors file into ``module``; every tensor must match by name and shape
    (CheckpointMismatchError names each one that does not)."""
    library = _safetensors()
    source = Path(path)
    with open(source, "rb") as file:
        start = file.read(8)
    if start.startswith((b"PK\x03\x04", b"HOOKLINE")):
        kind = "a torch.save weights file" if start.startswith(b"PK") else \
            "a hookline checkpoint or model file"
        raise CorruptCheckpointError(source, f"{source} is {kind}, not a safetensors file: "
                                     f"use hookline.checkpoint.load_weights or "
                                     f"hookline.load_model for it")
    try:
        state = library.load_file(str(source))
        from safetensors import safe_open
        with safe_open(str(source), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception as error:  # the library's own errors say little
        raise CorruptCheckpointError(source, f"{source} could not be read as a safetensors "
                                     f"file ({type(error).__name__}: {error})") from error
    for alias, original in json.loads(metadata.get(_ALIASES, "{}")).items():
        if original in state:
            state[alias] = state[original]
    own = module.state_dict()
    shapes = [f"tensor {key!r} has shape {tuple(state[key].shape)} in the file but "
              f"{tuple(own[key].shape)} in the model"
              for key in own if key in state and state[key].shape != own[key].shape]
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    if shapes or missing or unexpected:
        parts = shapes + [f"{label}: {', '.join(keys[:8])}" for label, keys in (
            ("missing in the file", missing), ("not in the model", unexpected)) if keys]
        raise CheckpointMismatchError(source, f"weights file {source} does not fit this "
                                      f"model: {'; '.join(parts)}")
    module.load_state_dict(state)
