"""The structure of a model's inputs, recorded once from training so export needs no example.

A signature is plain data (it survives ``torch.load(weights_only=True)`` and is kept in full
checkpoints and in ``weights/*.pt``)::

    {"args": [<spec>, ...], "kwargs": {"name": <spec>, ...}, "names": ["x", ...]}

where a ``<spec>`` is ``{"shape": [None, 3, 32, 32], "dtype": "float32"}`` for a tensor (the
batch dimension ``None``: dynamic), ``{"list": [<spec>, ...]}``, ``{"tuple": [...]}`` or
``{"dict": {"key": <spec>}}`` for nested inputs, and ``{"value": v}`` for a plain number,
string, bool or None passed to the model. ``names`` are the model's argument names for the
positional inputs (from ``forward``'s signature), used to name ONNX inputs.

The Trainer records it from the first ``model(...)`` call of ``fit`` (a forward pre-hook that
removes itself, so later batches pay nothing) as ``trainer.input_signature``.
``example_from_signature(sig)`` builds an input of that structure; ``load_signature(path)``
reads the one kept in a weights file or checkpoint.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["describe_signature", "example_from_signature", "export_file", "load_signature",
           "record_first_call", "signature_of", "training_signature"]

Signature = dict[str, Any]
_PLAIN = (bool, int, float, str, type(None))


def signature_of(args: tuple[Any, ...], kwargs: Mapping[str, Any],
                 model: nn.Module | None = None) -> Signature:
    """The signature of one call ``model(*args, **kwargs)``.

    Targets a model took to compute its own loss (``labels=`` of a Hugging Face model) are
    left out when ``forward`` can do without them: a deployed model is called without them.
    """
    optional = _optional_targets(model, kwargs)
    return {"args": [_spec(value, f"argument {i}") for i, value in enumerate(args)],
            "kwargs": {str(key): _spec(value, f"argument {key!r}")
                       for key, value in kwargs.items() if key not in optional},
            "names": _positional_names(model, len(args))}


def _optional_targets(model: nn.Module | None, kwargs: Mapping[str, Any]) -> set[str]:
    from hookline.structure import TARGET_KEYS
    if model is None or not any(key in kwargs for key in TARGET_KEYS):
        return set()
    try:
        parameters = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return set()
    return {key for key in TARGET_KEYS if key in kwargs and key in parameters
            and parameters[key].default is not inspect.Parameter.empty}


def _spec(value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, torch.Tensor):
        shape: list[int | None] = list(value.shape)
        if shape:
            shape[0] = None  # the batch dimension
        return {"shape": shape, "dtype": str(value.dtype).removeprefix("torch.")}
    if isinstance(value, Mapping):
        return {"dict": {str(key): _spec(item, f"{where}[{key!r}]")
                         for key, item in value.items()}}
    if isinstance(value, (tuple, list)):
        kind = "tuple" if isinstance(value, tuple) else "list"
        return {kind: [_spec(item, f"{where}[{i}]") for i, item in enumerate(value)]}
    if isinstance(value, _PLAIN):
        return {"value": value}
    return {"unsupported": type(value).__name__, "where": where}


def _positional_names(model: nn.Module | None, count: int) -> list[str]:
    names: list[str] = []
    if model is not None:
        try:
            parameters = list(inspect.signature(model.forward).parameters.values())
        except (TypeError, ValueError):
            parameters = []
        kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        names = [p.name for p in parameters if p.kind in kinds]
    names = names[:count]
    return names + [f"input_{i}" for i in range(len(names), count)]


def example_from_signature(signature: Signature, batch_size: int = 2,
                           seed: int = 0) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``(args, kwargs)`` of the recorded structure: random normal floats, zero integers, a
    batch of ``batch_size`` (2 by default: a size-1 example would make tracers fix the
    batch size at one)."""
    _check(signature)
    generator = torch.Generator().manual_seed(seed)
    args = tuple(_build(spec, batch_size, generator) for spec in signature["args"])
    kwargs = {key: _build(spec, batch_size, generator)
              for key, spec in signature["kwargs"].items()}
    return args, kwargs


def _build(spec: dict[str, Any], batch: int, generator: torch.Generator) -> Any:
    if "shape" in spec:
        shape = [batch if size is None else int(size) for size in spec["shape"]]
        dtype = getattr(torch, spec["dtype"])
        if dtype.is_floating_point or dtype.is_complex:
            return torch.randn(shape, generator=generator).to(dtype)
        return torch.zeros(shape, dtype=dtype)
    if "dict" in spec:
        return {key: _build(item, batch, generator) for key, item in spec["dict"].items()}
    if "list" in spec:
        return [_build(item, batch, generator) for item in spec["list"]]
    if "tuple" in spec:
        return tuple(_build(item, batch, generator) for item in spec["tuple"])
    if "value" in spec:
        return spec["value"]
    raise ValueError(f"the model's {spec.get('where', 'input')} was a "
                     f"{spec.get('unsupported', 'value')}, which a signature cannot rebuild; "
                     f"pass example_input= (one batch of inputs) to export")


def _check(signature: Any) -> None:
    if not isinstance(signature, Mapping) or not {"args", "kwargs"} <= set(signature):
        raise ValueError(f"not an input signature: {signature!r:.80}; use "
                         f"trainer.input_signature or hookline.signature.load_signature(path)")


def describe_signature(signature: Signature) -> str:
    """A one-line description, e.g. ``x: float32[N, 3, 32, 32]``."""
    _check(signature)
    names = list(signature.get("names") or [])
    parts = [f"{names[i] if i < len(names) else f'input_{i}'}: {_describe(spec)}"
             for i, spec in enumerate(signature["args"])]
    parts += [f"{key}: {_describe(spec)}" for key, spec in signature["kwargs"].items()]
    return ", ".join(parts) or "no inputs"


def _describe(spec: dict[str, Any]) -> str:
    if "shape" in spec:
        sizes = ", ".join("N" if size is None else str(size) for size in spec["shape"])
        return f"{spec['dtype']}[{sizes}]"
    if "dict" in spec:
        return "{" + ", ".join(f"{k}: {_describe(v)}" for k, v in spec["dict"].items()) + "}"
    for kind, brackets in (("list", "[]"), ("tuple", "()")):
        if kind in spec:
            return brackets[0] + ", ".join(map(_describe, spec[kind])) + brackets[1]
    if "value" in spec:
        return repr(spec["value"])
    return str(spec.get("unsupported", "?"))


def load_signature(path: str | os.PathLike[str]) -> Signature | None:
    """The input signature kept in a weights file (``weights/best.pt``) or a full checkpoint;
    None when the file has none (written before signatures were kept, or never trained)."""
    from hookline.checkpoint import load_weights
    payload = load_weights(path)
    signature = payload.get("input_signature") if isinstance(payload, Mapping) else None
    return dict(signature) if signature is not None else None


def record_first_call(engine: Any, model: nn.Module) -> None:
    """Set ``engine.input_signature`` from the first call of ``model`` in the training
    batches, once.

    A forward pre-hook that removes itself after that call: steps of any kind (the default
    step, a model's ``training_step``) are seen as the model is really called, and the
    per-batch path pays nothing after the first batch. Calls outside the batches (the
    summary's forward pass on a sample at on_train_start) are not recorded.
    """
    previous = getattr(engine, "_signature_hook", None)
    if previous is not None:
        previous.remove()  # a fit that never called the model left its hook

    def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if getattr(engine, "phase", "train") != "train":
            return
        engine._signature_hook.remove()
        engine._signature_hook = None
        engine.input_signature = signature_of(args, kwargs, module)

    engine._signature_hook = model.register_forward_pre_hook(hook, with_kwargs=True)


def training_signature(trainer: Any) -> Signature | None:
    """The trainer's recorded signature; before any fit, that of its first training batch
    (read by the batch rules of ``hookline.structure``, without training on it)."""
    if trainer.input_signature is not None:
        return dict(trainer.input_signature)
    if custom_training_step(trainer):
        return None  # its step, not the batch rules, decides what the model is called with
    from hookline.structure import unpack_batch
    try:
        first = next(iter(trainer.train_data.epoch(0)))
    except StopIteration:
        return None
    args, kwargs, _, _ = unpack_batch(first, target_key=trainer.args.target_key,
                                      take_target=trainer.loss_fn is not None)
    return signature_of(args, kwargs, trainer.model)


def custom_training_step(trainer: Any) -> bool:
    """Whether ``trainer`` trains through its own step (given, subclassed or the model's)."""
    from hookline.engine.steps import resolve_step
    from hookline.engine.trainer import Trainer
    return resolve_step(trainer, "training_step", trainer._given_steps["training_step"],
                        Trainer)[1]


def export_file(save_dir: str | os.PathLike[str] | None, format: str) -> Path:
    """Where an export goes by default: the run's ``weights/`` folder, else the current one."""
    from hookline.engine.exporter import EXPORT_FORMATS
    if format not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {format!r}; use one of "
                         f"{sorted(EXPORT_FORMATS)}")
    name = "model" + EXPORT_FORMATS[format]
    return Path(save_dir) / "weights" / name if save_dir is not None else Path(name)
