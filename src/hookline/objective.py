"""The loss a default step computes: a loss function on the output, weighted by
``sample_weight`` with Keras' meaning, or the loss the model returned itself.

With sample weights each sample's loss (averaged over its non-batch dimensions) is multiplied by
its weight and the sum is divided by the batch size (Keras' ``sum_over_batch_size``). Per-sample
losses come from the loss itself: a loss name, a torch loss module (its ``reduction`` set to
``"none"`` on a copy), a function taking ``reduction=``, or a function taking
``sample_weight=`` that weighs the samples itself.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from typing import Any

import torch

from hookline.structure import Prediction, describe, loss_of, prediction_of

__all__ = ["Objective", "explain_loss_error", "unweighable_own_loss", "weighted_mean"]


class Objective:
    """``loss(output, target, sample_weight)`` as a default step computes it.

    ``loss`` is the resolved loss callable (None: the model returns its loss); ``by_name`` says
    whether it was given by name, so it receives the prediction rather than the raw output.
    """

    def __init__(self, loss: Callable[..., Any] | None, *, by_name: bool = False,
                 prediction: Prediction = None) -> None:
        self.loss = loss
        self.takes_prediction = by_name
        self.prediction = prediction
        self._per_sample: Callable[..., Any] | None = None
        self._takes_weight = loss is not None and _accepts(loss, "sample_weight")
        # what a tensor output and an unweighted batch need: the loss function itself
        self.direct = loss

    def __call__(self, output: Any, target: Any, weight: Any = None) -> Any:
        """The loss tensor; the model's own output when there is no loss function or target
        (the step-output rule then reads its ``loss``)."""
        loss = self.loss
        if loss is None and isinstance(output, torch.Tensor):
            raise TypeError(f"the model returned {describe(output)}, which holds no loss: "
                            f"pass loss= (e.g. loss='cross_entropy'), return a loss from the "
                            f"model (an output with .loss), or write a training step")
        if loss is None and weight is not None:
            raise unweighable_own_loss(output)
        if loss is None or target is None:
            if loss is not None and loss_of(output) is None:
                raise ValueError(f"loss= was given but the batch has no target (the model got "
                                 f"all of it and returned {describe(output)}); {_NO_TARGET}")
            return output
        preds = prediction_of(output, self.prediction) if self.takes_prediction else output
        try:
            if weight is None:
                return loss(preds, target)
            if self._takes_weight:
                return loss(preds, target, sample_weight=weight)
            return weighted_mean(self._per_sample_loss()(preds, target), weight)
        except (RuntimeError, ValueError, IndexError) as error:
            explain_loss_error(error, preds, target)
            raise

    def _per_sample_loss(self) -> Callable[..., Any]:
        if self._per_sample is None:
            self._per_sample = _per_sample(self.loss)
        return self._per_sample


def unweighable_own_loss(output: Any) -> TypeError:
    """The error for sample weights on a model that computes its own loss: its loss never
    sees them, and an unweighted mean where weights were given is a silent wrong result."""
    return TypeError(f"the batch has sample weights, but there is no loss= and the model "
                     f"computes its own loss ({describe(output)}), which never sees them: "
                     f"pass loss= (which weighs samples), or leave sample_weight out of the "
                     f"batch")


_NO_TARGET = ("give batches with targets ((x, y), or a dict with target_key's entry), or "
              "drop loss= so the model's own loss is used")


def weighted_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``sum(value_i * weight_i) / N`` with each sample's value averaged over its other dims."""
    if values.dim() == 0:
        raise ValueError("sample_weight needs one loss value per sample, but the loss "
                         "returned a scalar; use a loss name, a torch loss module or a "
                         "function accepting reduction='none' or sample_weight=")
    if values.dim() > 1:
        values = values.flatten(1).mean(1)
    if len(values) != len(weight):
        raise ValueError(f"sample_weight has {len(weight)} weights for {len(values)} "
                         f"samples; give one weight per sample")
    return (values * weight.to(values.dtype)).sum() / len(values)


def _per_sample(loss: Any) -> Callable[..., Any]:
    """A version of ``loss`` that returns one value per sample (or raises saying why not)."""
    if isinstance(getattr(loss, "reduction", None), str):
        unreduced = copy.copy(loss)
        unreduced.reduction = "none"
        return unreduced  # type: ignore[no-any-return]
    inner = getattr(loss, "fn", None)  # hookline's regression losses wrap a functional loss
    if inner is not None and _accepts(inner, "reduction"):
        return lambda preds, target: loss.fn(preds, _like(target, preds), reduction="none")
    if _accepts(loss, "reduction"):
        return lambda preds, target: loss(preds, target, reduction="none")
    name = getattr(loss, "__name__", type(loss).__name__)
    raise TypeError(f"the batches carry sample_weight but the loss {name} cannot weigh "
                    f"samples: use a loss name, a torch loss module, or a function that "
                    f"accepts reduction='none' or sample_weight=")


def _like(target: torch.Tensor, preds: torch.Tensor) -> torch.Tensor:
    if target.shape != preds.shape and target.numel() == preds.numel():
        target = target.reshape(preds.shape)
    return target.to(preds.dtype)


def _accepts(fn: Any, name: str) -> bool:
    """Whether ``fn`` names the parameter ``name`` (a module's ``forward`` is read)."""
    target = fn.forward if isinstance(fn, torch.nn.Module) else fn
    try:
        return name in inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False


def explain_loss_error(error: BaseException, preds: Any, targets: Any) -> None:
    """Name the shapes when the loss fails: the usual cause is a model/labels mismatch."""
    if hasattr(error, "add_note"):
        error.add_note(
            f"hookline: the loss failed on predictions {_shape(preds)} and targets "
            f"{_shape(targets)}; check that the model's output matches the labels (classes, "
            f"dtype) and the loss you chose")


def _shape(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"of shape {tuple(value.shape)}"
    return describe(value)
