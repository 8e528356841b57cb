"""LearningRateMonitor: put each param group's learning rate into the epoch's metrics."""

from __future__ import annotations

from typing import Any

from hookline.callback import Callback
from hookline.callbacks.monitor import config_key

__all__ = ["LearningRateMonitor"]


class LearningRateMonitor(Callback):
    """Record the learning rate (and optionally momentum and weight decay) of every param group
    in ``trainer.metrics`` at ``on_train_epoch_end``.

    Keys: ``"lr"`` for the first group, ``"lr-group1"``, ``"lr-group2"``... for the others;
    likewise ``"momentum"`` (SGD's momentum, or Adam's first beta) and ``"weight_decay"``. The
    value is the rate in use at the end of the epoch's training, before any plateau reduction
    at ``on_fit_epoch_end``. It runs early (order -50) so the values are in the metrics before
    EarlyStopping, ModelCheckpoint, History and the loggers read them.

    Args:
        log_momentum: also record momentum.
        log_weight_decay: also record weight decay.

    Example::

        history = Trainer(..., callbacks=[LearningRateMonitor()]).fit()
        # trainer.metrics["lr"] each epoch; History keeps the series
    """

    order = -50

    def __init__(self, log_momentum: bool = False, log_weight_decay: bool = False) -> None:
        self.log_momentum = bool(log_momentum)
        self.log_weight_decay = bool(log_weight_decay)

    @property
    def state_key(self) -> str:
        return config_key("LearningRateMonitor", log_momentum=self.log_momentum,
                          log_weight_decay=self.log_weight_decay)

    def on_train_epoch_end(self, trainer: Any) -> None:
        trainer.metrics.update(self.values(trainer.optimizer))

    def values(self, optimizer: Any) -> dict[str, float]:
        """The values this callback records, for an optimizer."""
        values: dict[str, float] = {}
        for index, group in enumerate(optimizer.param_groups):
            suffix = f"-group{index}" if index else ""
            values[f"lr{suffix}"] = float(group["lr"])
            if self.log_momentum:
                momentum = group.get("momentum")
                if momentum is None and "betas" in group:
                    momentum = group["betas"][0]
                values[f"momentum{suffix}"] = float(momentum) if momentum is not None else 0.0
            if self.log_weight_decay:
                values[f"weight_decay{suffix}"] = float(group.get("weight_decay", 0.0))
        return values
