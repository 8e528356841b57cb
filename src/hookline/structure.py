"""How a batch is read and how a model's output is read: the rules every default step follows.

**Batches** (the same rules in training, validation and prediction):

* ``(x, y)``: ``model(x)``, target ``y``;
* ``(x, y, sample_weight)``: Keras' meaning: the loss (and ``weighted_metrics``) weigh each
  sample; ``sample_weight`` holds one weight per sample (shape ``(N,)``);
* inputs given as a tuple or list, ``((a, b), y)``, call ``model(a, b)``; inputs given as a
  dict, ``({"a": a, "b": b}, y)``, call ``model(a=a, b=b)``;
* a dict batch, ``{"input_ids": ..., "labels": ...}`` (the Hugging Face shape): the target is
  the value under ``target_key`` (by default the first of ``labels``, ``label``, ``y``,
  ``target``, ``targets`` present) and a ``sample_weight`` key is taken out as weights. With a
  loss function the target is taken out and ``model(**rest)`` is called; without one the whole
  dict goes to the model, which computes its own loss (a Hugging Face model reads ``labels``);
* a lone tensor or ``(x,)``: no target (to train, the model must return its own loss).

Anything else is an error that names these rules: nothing in a batch is dropped silently.

**Outputs.** A model may return a tensor, a tuple or list, a dict, or an object with a
``.loss`` attribute (Hugging Face outputs). The *prediction* that metrics (and named losses such
as ``"cross_entropy"``) receive is, by default: the tensor itself; the first element of a tuple;
the ``logits`` (else ``preds``) entry of a dict or output object. ``prediction=`` picks another:
an index, a key or attribute name, or a function ``f(output) -> tensor``. A loss function you
pass as a callable receives the output as the model returned it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

__all__ = ["TARGET_KEYS", "loss_of", "prediction_of", "sample_count", "unpack_batch"]

Tensor = torch.Tensor

TARGET_KEYS = ("labels", "label", "y", "target", "targets")
WEIGHT_KEY = "sample_weight"
_RULES = ("a batch is (x, y), (x, y, sample_weight), ((a, b), y) for several inputs, "
          "({'name': x}, y) for named inputs, a dict such as {'input_ids': ..., 'labels': ...}, "
          "or x alone")

Unpacked = tuple[tuple[Any, ...], dict[str, Any], Any, Any]


def sample_count(batch: Any) -> int:
    """The samples in ``batch``: the first dimension of its first tensor (Keras' rule), 1
    when it holds none. An epoch's loss and ``val_loss`` are means over samples, so a short
    last batch weighs what it holds. Inputs given as a list count by their target: a list of N
    images (torchvision's detection collate, with a list of N target dicts) holds N."""
    if type(batch) in (tuple, list) and batch:
        first = batch[0]
        if type(first) is Tensor and first.ndim:
            return int(first.shape[0])  # (x, y): the common case, without the search
        if isinstance(first, (tuple, list)) and first:
            per_sample = _per_sample_count(first, batch[1] if len(batch) > 1 else None)
            if per_sample:
                return per_sample
    return _first_size(batch) or 1


def _per_sample_count(inputs: tuple[Any, ...] | list[Any], target: Any) -> int:
    """The samples of ``(inputs, target)`` when ``inputs`` is a list or tuple: the target's
    first dimension (several inputs share it, and a list of N images has N targets), or N for
    a list of N target dicts; 0 when the target says nothing."""
    if type(target) is Tensor and target.ndim:
        return int(target.shape[0])
    if isinstance(target, (tuple, list)) and len(target) == len(inputs) and all(
            isinstance(item, Mapping) for item in target):
        return len(inputs)
    return 0


def _first_size(value: Any) -> int:
    if isinstance(value, Tensor):
        return int(value.shape[0]) if value.ndim else 0
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        for item in value:
            size = _first_size(item)
            if size:
                return size
    return 0


def unpack_batch(batch: Any, *, target_key: str | None = None,
                 take_target: bool = True) -> Unpacked:
    """``(args, kwargs, target, sample_weight)`` for one batch, by the rules above.

    ``take_target`` says whether a dict batch's target is taken out of the model's inputs (a
    loss function will use it) or left in (the model computes its own loss from it).
    """
    if isinstance(batch, Tensor):
        return (batch,), {}, None, None
    if isinstance(batch, Mapping):
        return _unpack_dict(batch, target_key, take_target)
    if isinstance(batch, (tuple, list)):
        if len(batch) == 0 or len(batch) > 3:
            raise ValueError(f"a batch of {len(batch)} elements fits no rule: {_RULES}. For "
                             f"several inputs group them: ((a, b), y)")
        inputs = batch[0]
        target = batch[1] if len(batch) > 1 else None
        weight = _check_weight(batch[2], target) if len(batch) == 3 else None
        args, kwargs = _as_call(inputs)
        return args, kwargs, target, weight
    return (batch,), {}, None, None  # one non-tensor input (a custom object the model reads)


def _unpack_dict(batch: Mapping[str, Any], target_key: str | None,
                 take_target: bool) -> Unpacked:
    key = target_key if target_key is not None else next(
        (name for name in TARGET_KEYS if name in batch), None)
    if target_key is not None and target_key not in batch:
        raise ValueError(f"target_key={target_key!r} is not in the batch, whose keys are "
                         f"{sorted(batch)}; pass the key that holds the targets, or "
                         f"target_key=None for the defaults {list(TARGET_KEYS)}")
    target = batch[key] if key is not None else None
    weight = _check_weight(batch[WEIGHT_KEY], target) if WEIGHT_KEY in batch else None
    drop = {WEIGHT_KEY} | ({key} if take_target and key is not None else set())
    kwargs = {name: value for name, value in batch.items() if name not in drop}
    return (), kwargs, target, weight


def _as_call(inputs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if isinstance(inputs, Tensor):
        return (inputs,), {}
    if isinstance(inputs, Mapping):
        return (), dict(inputs)
    if isinstance(inputs, (tuple, list)):
        return tuple(inputs), {}
    return (inputs,), {}


def _check_weight(weight: Any, target: Any) -> Any:
    """A sample weight is one number per sample: anything else is a mistake worth naming (a
    third array meant as another input would otherwise be used as weights)."""
    if weight is None:
        return None
    if not isinstance(weight, Tensor) or weight.dim() != 1 or weight.is_complex() or \
            not weight.is_floating_point():
        shape = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
        raise ValueError(
            f"the third element of a batch is sample_weight (Keras' (x, y, sample_weight)): "
            f"one float weight per sample, shape (N,); got {shape}"
            f"{' of dtype ' + str(weight.dtype) if isinstance(weight, Tensor) else ''}. For "
            f"two inputs pass ((a, b), y)")
    size = _batch_size(target)
    if size is not None and len(weight) != size:
        raise ValueError(f"sample_weight has {len(weight)} weights but the batch has {size} "
                         f"targets; give one weight per sample")
    return weight


def _batch_size(value: Any) -> int | None:
    if isinstance(value, Tensor) and value.dim():
        return len(value)
    return None


# --- outputs ------------------------------------------------------------------------------
Prediction = int | str | Callable[[Any], Any] | None


def prediction_of(output: Any, choice: Prediction = None) -> Any:
    """The part of a model's output that metrics receive (see the module docstring)."""
    if choice is None:
        if isinstance(output, Tensor):
            return output
        if isinstance(output, Mapping):
            for key in ("logits", "preds"):
                if output.get(key) is not None:
                    return output[key]
            return next((value for key, value in output.items()
                         if key != "loss" and isinstance(value, Tensor)), None)
        if isinstance(output, (tuple, list)):
            return prediction_of(output[0]) if output else None
        for name in ("logits", "preds"):
            value = getattr(output, name, None)
            if value is not None:
                return value
        return None
    if callable(choice):
        return choice(output)
    if isinstance(output, Mapping) or isinstance(choice, int):
        try:
            return output[choice]
        except (KeyError, IndexError, TypeError):
            pass
    if isinstance(choice, str) and hasattr(output, choice):
        return getattr(output, choice)
    raise ValueError(f"prediction={choice!r} is not in the model's output "
                     f"({describe(output)}); pass an index, a key, or a function "
                     f"f(output) -> tensor")


def loss_of(output: Any) -> Any:
    """The loss a model returned itself (``output.loss`` or ``output["loss"]``), else None."""
    if isinstance(output, Mapping):
        return output.get("loss")
    if isinstance(output, (Tensor, tuple, list)):
        return None
    return getattr(output, "loss", None)


def describe(value: Any) -> str:
    """A short description of a batch or output for error messages."""
    if isinstance(value, Tensor):
        return f"Tensor{tuple(value.shape)}"
    if isinstance(value, Mapping):
        return f"{type(value).__name__} with keys {list(value)}"
    if isinstance(value, (tuple, list)):
        return f"{type(value).__name__} of {len(value)}: " + ", ".join(
            describe(item) for item in value[:4])
    return type(value).__name__
