"""Which step runs each batch, and how what a step returns is read.

A phase's step is, first found wins:

1. a function given to the engine (``Trainer(training_step=fn)``), called ``fn(engine, batch)``;
2. a method of an engine subclass overriding ``training_step(self, batch)`` (and
   ``validation_step``, ``predict_step``);
3. a method the model declares, Lightning's way: ``model.training_step(batch)`` or
   ``model.training_step(batch, batch_idx)``;
4. the default step: ``loss(model(x), y)`` by the batch and output rules of
   ``hookline.structure``.

A training or validation step returns the loss: a scalar tensor; a dict of named losses (their
sum is the total unless a ``loss`` entry is given; each part is logged); or an output with a
``.loss`` (a Hugging Face output). In a dict, ``preds``/``logits`` and ``target`` entries are
what metrics receive; a ``logs`` entry is a dict of values logged as the epoch's (the last
step's value, as Keras logs what ``train_step`` returns); other entries that are not scalars are
left alone (``trainer.step_extras``).
"""

from __future__ import annotations

import functools
import inspect
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import torch

from hookline.structure import describe

__all__ = ["StepOutput", "not_scalar", "parts_changed", "read_step_output", "resolve_step",
           "returned_none"]

_NOT_LOSS = frozenset({"preds", "logits", "target", "sample_weight", "logs"})


def resolve_step(engine: Any, name: str, given: Callable[..., Any] | None, base: type,
                 batch_index: Callable[[], int] | None = None
                 ) -> tuple[Callable[[Any], Any], bool]:
    """``(step, is_custom)`` for phase ``name`` ("training_step", "validation_step",
    "predict_step") of ``engine``, whose default implementation lives on class ``base``.
    ``batch_index()`` is the phase's batch index a model's ``step(batch, batch_idx)`` is
    given (default ``engine.batch_i``): the trainer's validation passes its validator's."""
    if given is not None:
        if not callable(given):
            raise TypeError(f"{name}= must be a function f(engine, batch), got {given!r}")
        return functools.partial(given, engine), True
    if getattr(type(engine), name) is not getattr(base, name):
        return getattr(engine, name), True
    declared = getattr(engine.model, name, None)
    if callable(declared):
        if _positional_count(declared) >= 2:
            if batch_index is None:
                return lambda batch: declared(batch, engine.batch_i), True
            return lambda batch: declared(batch, batch_index()), True
        return declared, True
    return getattr(engine, name), False


def _positional_count(fn: Callable[..., Any]) -> int:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in parameters if p.kind in kinds)


class StepOutput:
    """A step's return value read by the rule above."""

    __slots__ = ("extras", "logs", "loss", "parts", "preds", "sample_weight", "target")

    def __init__(self, loss: Any, parts: dict[str, torch.Tensor] | None = None,
                 preds: Any = None, target: Any = None, extras: dict[str, Any] | None = None,
                 logs: Mapping[str, Any] | None = None, sample_weight: Any = None) -> None:
        self.loss, self.parts, self.preds, self.target = loss, parts, preds, target
        self.extras = extras or {}
        self.logs = logs
        self.sample_weight = sample_weight


def read_step_output(value: Any, phase: str = "training") -> StepOutput:
    """Read a non-tensor step result (a tensor is the loss itself and never comes here)."""
    if isinstance(value, Mapping):
        return _read_mapping(value, phase)
    if isinstance(value, numbers.Number):
        raise TypeError(f"the loss must return a scalar tensor, got {type(value).__name__}; "
                        f"return a torch.Tensor (e.g. torch.nn.functional.mse_loss(...)), so "
                        f"that backward() can run")
    loss = getattr(value, "loss", None)
    if loss is not None and not isinstance(value, (tuple, list)):
        return StepOutput(loss, preds=getattr(value, "logits", None))
    raise TypeError(
        f"the {phase} step returned {describe(value)}, which holds no loss: return a scalar "
        f"loss tensor, a dict of named losses ({{'recon': ..., 'kl': ...}}), or an output "
        f"with .loss; with the default step, pass loss= or use a model that returns its loss")


def _read_mapping(value: Mapping[str, Any], phase: str) -> StepOutput:
    parts: dict[str, torch.Tensor] = {}
    extras: dict[str, Any] = {}
    for key, item in value.items():
        if key == "loss" or key in _NOT_LOSS:
            continue
        if isinstance(item, torch.Tensor) and item.dim() == 0:
            parts[str(key)] = item
        elif isinstance(item, numbers.Real) and not isinstance(item, bool):
            parts[str(key)] = torch.scalar_tensor(float(item))
        else:
            extras[str(key)] = item
    preds = value.get("preds", value.get("logits"))
    loss = value.get("loss")
    logs = value.get("logs")
    if logs is not None and not isinstance(logs, Mapping):
        raise TypeError(f"the {phase} step's 'logs' entry must be a dict of values to log, "
                        f"got {type(logs).__name__}")
    if loss is None:
        if not parts:
            raise TypeError(f"the {phase} step returned {describe(value)}: a dict needs a "
                            f"'loss' entry or named scalar losses to add up")
        loss = functools.reduce(lambda total, part: total + part, parts.values())
    return StepOutput(loss, parts or None, preds, value.get("target"), extras, logs,
                      value.get("sample_weight"))


def returned_none(automatic: bool) -> TypeError:
    """The error for a training step that returned None (Lightning lets a manual step return
    nothing, and an automatic one skip its batch that way; here the step returns its loss)."""
    if automatic:
        return TypeError(
            "the training step returned None: return its loss (a scalar tensor, a dict of "
            "named losses, or an output with .loss) for the engine's backward and optimizer "
            "step; to leave a batch out, filter it from the data")
    return TypeError(
        "the training step returned None: with automatic_optimization=False the step still "
        "returns the loss it computed (after its own trainer.backward() and "
        "trainer.step_optimizer()), which is logged as the epoch's loss: end it with "
        "'return loss' (or a dict of named losses)")


def parts_changed(before: list[str], now: list[str], phase: str = "training") -> ValueError:
    """The error for a step whose named loss parts differ from an earlier step's."""
    return ValueError(f"the {phase} step returned loss parts {now} after {before}; return "
                      f"the same named parts at every step (their means are logged per "
                      f"epoch)")


def not_scalar(loss: Any, phase: str = "training") -> Exception:
    """The error for a step's loss that is not a scalar tensor."""
    if not isinstance(loss, torch.Tensor):
        return TypeError(f"the {phase} step's loss must be a scalar tensor, got "
                         f"{type(loss).__name__}; return a torch.Tensor (e.g. "
                         f"torch.nn.functional.mse_loss(...))")
    return ValueError(f"the {phase} step's loss must be a scalar tensor, got "
                      f"{tuple(loss.shape)}; reduce it (e.g. .mean(), or reduction='mean' on "
                      f"a torch loss)")
