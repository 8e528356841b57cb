"""The Validator: one pass over validation data, firing the on_val_* events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from hookline.data import as_batches, move_to
from hookline.engine.base import Engine, autocast, resolve_device, resolve_precision
from hookline.engine.schedule import batch_limit, check_limit
from hookline.engine.steps import not_scalar, parts_changed, read_step_output, resolve_step
from hookline.metrics import MetricSet, resolve_loss, resolve_metrics
from hookline.module_modes import ModuleModes
from hookline.objective import Objective, explain_loss_error, unweighable_own_loss
from hookline.structure import (
    Prediction,
    describe,
    loss_of,
    prediction_of,
    sample_count,
    unpack_batch,
)

__all__ = ["Validator"]

_PAIRS = (tuple, list)


class Validator(Engine):
    """Evaluate a model on data: loss (when a loss is given or the model returns one) and
    metrics.

    Inside ``Trainer.fit`` the trainer's validator shares its callbacks and ``trainer`` points
    back to it; standalone, use ``Validator(model, data=..., loss=...).validate()``.
    ``step=fn`` replaces the default validation step with ``fn(validator, batch)``; a model
    declaring ``validation_step(batch)`` is used the same way (see ``hookline.engine.steps``).

    State callbacks can read: ``batch``, ``batch_i``, ``outputs``, ``preds``, ``target``,
    ``loss``, ``loss_parts``, ``metrics`` (after ``on_val_end``, without the ``val_`` prefix),
    ``loss_names``, ``model``, ``data``, ``trainer``, ``args``.
    """

    def __init__(self, model: nn.Module, *, data: Any = None, loss: Any = None,
                 metrics: Any = "auto", weighted_metrics: Any = None, batch_size: int = 32,
                 device: str | torch.device = "auto", precision: str = "32",
                 callbacks: Any = (), trainer: Any = None,
                 step: Callable[..., Any] | None = None, target_key: str | None = None,
                 prediction: Prediction = None,
                 limit_batches: float | None = None) -> None:
        if limit_batches is not None:  # 0 would blame the data ("yielded no batches")
            check_limit("limit_batches", limit_batches)
        super().__init__(callbacks)
        self.model = model
        self.forward_model: nn.Module = model  # the trainer's compiled forward, when compiled
        self.trainer = trainer
        if isinstance(loss, Objective):
            self.objective = loss
        else:
            self.objective = Objective(resolve_loss(loss) if loss is not None else None,
                                       by_name=isinstance(loss, str), prediction=prediction)
        self.loss_fn = self.objective.loss
        self.metric_set = MetricSet(resolve_metrics(metrics, self.loss_fn),
                                    resolve_metrics(weighted_metrics, self.loss_fn))
        self.data = as_batches(data, name="val_data", batch_size=batch_size)
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision)
        self.batch: Any = None
        self.batch_i = 0
        self.outputs: Any = None
        self.preds: Any = None
        self.target: Any = None
        self.sample_weight: torch.Tensor | None = None
        self.loss: torch.Tensor | None = None
        self.loss_parts: dict[str, torch.Tensor] | None = None
        self.loss_names = ["loss"]
        self.step_logs: dict[str, Any] = {}  # a step's 'logs' entry: logged as the pass's
        self.metrics: dict[str, float] = {}
        self.args.batch_size = batch_size
        self.args.device = self.device
        self.args.precision = self.precision
        self.args.target_key = target_key
        self.args.prediction = prediction
        self.args.limit_batches = limit_batches
        self._given_step = step
        self._step: Callable[[Any], Any] | None = None

    def use_step(self, step: Callable[[Any], Any] | None) -> None:
        """Run ``step(batch)`` instead of the default step (the Trainer passes its own)."""
        self._step = step

    def validation_step(self, batch: Any) -> Any:
        """The default validation step: the model's output and, when a loss can be computed,
        the loss (the same rules as the training step)."""
        if type(batch) in _PAIRS and len(batch) == 2 and type(batch[0]) is torch.Tensor:
            target, weight = batch[1], None  # (x, y): what unpack_batch would read, sooner
            self.outputs = output = self.forward_model(batch[0])
        else:
            args, kwargs, target, weight = unpack_batch(
                batch, target_key=self.args.target_key, take_target=self.loss_fn is not None)
            self.outputs = output = self.forward_model(*args, **kwargs)
        tensor = type(output) is torch.Tensor
        self.preds = output if tensor else prediction_of(output, self.args.prediction)
        self.target, self.sample_weight = target, weight
        if self.loss_fn is not None and target is not None:
            direct = self.objective.direct
            if direct is not None and weight is None and tensor:
                try:  # the common case without the objective's call: loss(model(x), y)
                    return direct(output, target)
                except (RuntimeError, ValueError, IndexError) as error:
                    explain_loss_error(error, output, target)
                    raise
            return self.objective(output, target, weight)
        own_loss = None if tensor else loss_of(output)
        if self.loss_fn is not None and own_loss is None:
            raise _no_target(output)
        if weight is not None and own_loss is not None:
            raise unweighable_own_loss(output)
        return None if tensor else output  # its own loss, if it has one

    def validate(self, data: Any = None) -> dict[str, float]:
        """Run validation as a whole run (with on_exception and teardown); returns metrics."""
        return self._run_top_level(lambda: self.run(data))

    def run(self, data: Any = None, limit: int | None = None) -> dict[str, float]:
        """One validation pass (no teardown: used inside fit), of at most ``limit`` batches
        (default: ``limit_batches``)."""
        batches = as_batches(data, name="val_data", batch_size=self.args.batch_size) \
            if data is not None else self.data
        if batches is None:
            raise ValueError("nothing to validate: pass data= (arrays, a DataLoader or an "
                             "iterable of (x, y) batches)")
        model, device, fire = self.model, self.device, self.callbacks.fire
        handlers = self.callbacks.handlers
        on_batch_start, on_batch_end = handlers["on_val_batch_start"], handlers["on_val_batch_end"]
        metric_set = self.metric_set
        step = self._current_step()
        if limit is None:
            limit = batch_limit(self.args.limit_batches, batches, "limit_val_batches")
        custom = step is not self.validation_step
        move = device.type != "cpu"
        modes = ModuleModes(model)
        metric_set.to(device)
        metric_set.reset()
        self.loss_names, self.step_logs = ["loss"], {}
        first_parts: list[str] | None = None
        fire("on_val_start", self)
        model.eval()
        try:
            with torch.no_grad(), autocast(device, self.precision):
                for batch_i, batch in enumerate(batches.epoch(0)):
                    if limit is not None and batch_i >= limit:
                        break
                    self.batch_i, self.batch = batch_i, batch
                    if on_batch_start:
                        fire("on_val_batch_start", self)
                    if move:
                        batch = move_to(batch, device)
                    if custom:
                        self.outputs = self.preds = self.target = self.sample_weight = None
                    result = step(batch)
                    loss: torch.Tensor | None = result
                    if type(result) is torch.Tensor:  # the loss itself: nothing to read
                        self.loss_parts = None
                    else:
                        loss = self._read(result, custom)
                    if loss is not None and getattr(loss, "ndim", None) != 0:
                        raise not_scalar(loss, "validation")
                    parts = None if self.loss_parts is None else list(self.loss_parts)
                    if batch_i == 0:
                        first_parts = parts
                    elif parts != first_parts:
                        raise parts_changed(first_parts or ["loss"], parts or ["loss"],
                                            "validation")
                    self.loss = loss
                    metric_set.update(self.preds, self.target, loss, self.sample_weight,
                                      self.loss_parts, sample_count(batch))
                    if on_batch_end:
                        fire("on_val_batch_end", self)
        finally:
            modes.restore()  # a submodule frozen in eval stays so (module_modes.py)
        if metric_set.count == 0:
            raise ValueError("val_data yielded no batches; pass at least one batch")
        self.loss_names = metric_set.part_names or ["loss"]
        self.metrics = metric_set.compute()
        for name, value in self.step_logs.items():  # the last step's, as in training
            self.metrics.setdefault(str(name), float(value))
        fire("on_val_end", self)
        return self.metrics

    def _current_step(self) -> Callable[[Any], Any]:
        if self._step is not None:
            return self._step
        if self._given_step is not None or self.trainer is None:
            step, _ = resolve_step(self, "validation_step", self._given_step, Validator)
            return step
        return self.validation_step

    def _read(self, result: Any, custom: bool) -> torch.Tensor | None:
        """The loss of a step result (None when there is none: metrics only). The default
        step's model output may hold no loss; a custom step's result must be readable."""
        self.loss_parts = None
        if type(result) is torch.Tensor:
            return result
        if result is None:
            return None
        try:
            output = read_step_output(result, "validation")
        except TypeError:
            if custom or self.loss_fn is None and not self.metric_set.names:
                raise
            return None  # an output without a loss: metrics are computed, no val_loss
        self.loss_parts = output.parts
        if output.preds is not None and self.preds is None:
            self.preds = output.preds
        if output.target is not None:
            self.target = output.target
        if output.sample_weight is not None:
            self.sample_weight = output.sample_weight
        if output.logs is not None:
            self.step_logs = dict(output.logs)
        return output.loss  # type: ignore[no-any-return]


def _no_target(output: Any) -> ValueError:
    """The error for loss= on validation batches without targets: training refuses such
    batches, and validating them silently would log no val_loss (or fail later, in the
    metrics, blaming the step)."""
    return ValueError(f"loss= was given but the validation batch has no target (the model got "
                      f"all of it and returned {describe(output)}); give val_data (Model.fit's "
                      f"validation_data, Model.evaluate's y) with targets: (x, y) batches, "
                      f"or dicts with target_key's entry; or drop loss= so the model's own "
                      f"loss is used")
