"""The Validator: one pass over validation data, firing the on_val_* events."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hookline.data import as_batches, move_to
from hookline.engine.base import Engine, autocast, resolve_device, resolve_precision
from hookline.metrics import MetricSet, resolve_loss, resolve_metrics

__all__ = ["Validator"]


class Validator(Engine):
    """Evaluate a model on data: loss (when a loss is given) and metrics.

    Inside ``Trainer.fit`` the trainer's validator shares its callbacks and ``trainer`` points
    back to it; standalone, use ``Validator(model, data=..., loss=...).validate()``.

    State callbacks can read: ``batch``, ``batch_i``, ``preds``, ``loss``, ``metrics`` (after
    ``on_val_end``, without the ``val_`` prefix), ``model``, ``data``, ``trainer``, ``args``.
    """

    def __init__(self, model: nn.Module, *, data: Any = None, loss: Any = None,
                 metrics: Any = "auto", batch_size: int = 32, device: str | torch.device = "auto",
                 precision: str = "32", callbacks: Any = (), trainer: Any = None) -> None:
        super().__init__(callbacks)
        self.model = model
        self.trainer = trainer
        self.loss_fn = resolve_loss(loss) if loss is not None else None
        self.metric_set = MetricSet(resolve_metrics(metrics, self.loss_fn))
        self.data = as_batches(data, name="val_data", batch_size=batch_size)
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision)
        self.batch: Any = None
        self.batch_i = 0
        self.preds: torch.Tensor | None = None
        self.loss: torch.Tensor | None = None
        self.metrics: dict[str, float] = {}
        self.args.batch_size = batch_size
        self.args.device = self.device
        self.args.precision = self.precision

    def validate(self, data: Any = None) -> dict[str, float]:
        """Run validation as a whole run (with on_exception and teardown); returns metrics."""
        return self._run_top_level(lambda: self.run(data))

    def run(self, data: Any = None) -> dict[str, float]:
        """One validation pass (no teardown: used inside fit)."""
        batches = as_batches(data, name="val_data", batch_size=self.args.batch_size) \
            if data is not None else self.data
        if batches is None:
            raise ValueError("nothing to validate: pass data= (arrays, a DataLoader or an "
                             "iterable of (x, y) batches)")
        model, device, fire = self.model, self.device, self.callbacks.fire
        handlers = self.callbacks.handlers
        on_batch_start, on_batch_end = handlers["on_val_batch_start"], handlers["on_val_batch_end"]
        loss_fn, metric_set = self.loss_fn, self.metric_set
        move = device.type != "cpu"
        was_training = model.training
        metric_set.to(device)
        metric_set.reset()
        fire("on_val_start", self)
        model.eval()
        try:
            with torch.no_grad(), autocast(device, self.precision):
                for batch_i, batch in enumerate(batches.epoch(0)):
                    self.batch_i, self.batch = batch_i, batch
                    if on_batch_start:
                        fire("on_val_batch_start", self)
                    if move:
                        batch = move_to(batch, device)
                    x, y = _split(batch)
                    self.preds = preds = model(x)
                    self.loss = loss = loss_fn(preds, y) if loss_fn is not None else None
                    metric_set.update(preds, y, loss)
                    if on_batch_end:
                        fire("on_val_batch_end", self)
        finally:
            model.train(was_training)
        if metric_set.count == 0:
            raise ValueError("val_data yielded no batches; pass at least one batch")
        self.metrics = metric_set.compute(with_loss=loss_fn is not None)
        fire("on_val_end", self)
        return self.metrics


def _split(batch: Any) -> tuple[Any, Any]:
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0], batch[1]
    raise ValueError(f"a validation batch must be (x, y); got {type(batch).__name__}"
                     f"{' of length ' + str(len(batch)) if isinstance(batch, (tuple, list)) else ''}")
