"""The loss a default step computes: a loss function on the output, weighted by
``sample_weight`` with Keras' meaning, or the loss the model returned itself.

With sample weights each value of the unreduced loss is multiplied by its sample's weight and
the sum is divided by the batch's size as the loss's own mean counts it (Keras'
``sum_over_batch_size``): the samples, times their positions for a per-position loss; for torch's
cross entropy and NLL with class indices, the positions they do not ignore (``ignore_index``),
each counting its class weight (``weight=``). Weights of ones thus give the unweighted loss.
Per-sample losses come from the loss itself: a loss name, a torch loss module (its
``reduction`` set to ``"none"`` on a copy), a function taking ``reduction=``, or a function
taking ``sample_weight=`` that weighs the samples itself.
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
        self._counted: Callable[[Any], torch.Tensor | None] = _every_position
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
            values = self._per_sample_loss()(preds, target)
            return weighted_mean(values, weight, self._counted(target))
        except (RuntimeError, ValueError, IndexError) as error:
            explain_loss_error(error, preds, target)
            raise

    def _per_sample_loss(self) -> Callable[..., Any]:
        if self._per_sample is None:
            self._per_sample = _per_sample(self.loss)
            self._counted = _positions_counted(self._per_sample)
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


def weighted_mean(values: torch.Tensor, weight: torch.Tensor,
                  counted: torch.Tensor | None = None) -> torch.Tensor:
    """``sum(weight_i * value_i,t) / sum(counted_i,t)``: each sample's values weighed by its
    weight, over the batch's size as the loss's mean counts it. ``counted`` (shaped as
    ``values``) is what each position counts, 1 each when None, so weights of ones give the
    loss's own mean: positions a loss ignores count 0, a class-weighted one its class weight."""
    if values.dim() == 0:
        raise ValueError("sample_weight needs one loss value per sample, but the loss "
                         "returned a scalar; use a loss name, a torch loss module or a "
                         "function accepting reduction='none' or sample_weight=")
    if len(values) != len(weight):
        raise ValueError(f"sample_weight has {len(weight)} weights for {len(values)} "
                         f"samples; give one weight per sample")
    if counted is None:
        if values.dim() > 1:
            values = values.flatten(1).mean(1)
        return (values * weight.to(values.dtype)).sum() / len(values)
    if values.dim() > 1:
        values = values.flatten(1).sum(1)
    return (values * weight.to(values.dtype)).sum() / counted.sum().to(values.dtype)


def _every_position(target: Any) -> None:
    """Every position counts 1 (the mean over all of them): most losses' mean."""


def _positions_counted(loss: Any) -> Callable[[Any], torch.Tensor | None]:
    """What each position counts in ``loss``'s own mean. Torch's cross entropy and NLL with
    class indices divide by the class weights of the positions they do not ignore, so a
    padded position (``ignore_index``) counts 0 and a class-weighted one its weight; averaged
    as ones, padding diluted the loss. Probability targets count every position, as there."""
    if not isinstance(loss, (torch.nn.CrossEntropyLoss, torch.nn.NLLLoss)):
        return _every_position

    def counted(target: Any) -> torch.Tensor | None:
        if not isinstance(target, torch.Tensor) or target.is_floating_point():
            return None
        valid = target != loss.ignore_index
        if loss.weight is None:
            return valid
        return loss.weight[target.masked_fill(~valid, 0)] * valid
    return counted


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
