"""LearningRateMonitor: put each param group's learning rate into the epoch's metrics."""

from __future__ import annotations

from typing import Any, Literal

from hookline.callback import Callback
from hookline.callbacks.monitor import check_choice, config_key

__all__ = ["LearningRateMonitor"]


class LearningRateMonitor(Callback):
    """Record the learning rate (and optionally momentum and weight decay) of every param group
    in ``trainer.metrics`` at ``on_train_epoch_end``, as they were when the epoch started.

    Keys (``key_style="hookline"``): ``"lr"`` for the first group, ``"lr-group1"``,
    ``"lr-group2"``... for the others; likewise ``"momentum"`` (SGD's momentum, or Adam's
    first beta) and ``"weight_decay"``. ``key_style="lightning"`` writes Lightning's keys
    instead, so ported monitors such as ``EarlyStopping(monitor="lr-SGD")`` find them:
    ``"lr-SGD"`` (the optimizer's class name), ``"lr-SGD/pg1"``, ``"lr-SGD/pg2"``... when there
    are several groups (a group's ``"name"`` replaces ``pg<i>``), and ``"<key>-momentum"``,
    ``"<key>-weight_decay"``. ``"both"`` writes the two sets. With several optimizers each
    gets its keys: ``"lr-<name>"`` (``"lr-generator"``), and Lightning's ``"lr-Adam"``,
    ``"lr-Adam-1"`` for a repeated class. The value is the rate the epoch started with, read
    at ``on_train_epoch_start`` (as Lightning's ``logging_interval="epoch"``): the rate a
    per-epoch schedule set for the epoch, and with a per-step schedule the rate of its first
    step, not the rate its last step left for the next epoch; a plateau reduction at
    ``on_fit_epoch_end`` shows in the next epoch's value. The values read are in
    ``state_dict``, so a resumed epoch logs what the uninterrupted one did. It runs early
    (order -50): after ``LearningRateScheduler`` sets the epoch's rate, and with the values in
    the metrics before EarlyStopping, ModelCheckpoint, History and the loggers read them.

    Args:
        log_momentum: also record momentum.
        log_weight_decay: also record weight decay.
        key_style: "hookline" (``lr``), "lightning" (``lr-SGD``) or "both".

    Example::

        history = Trainer(..., callbacks=[LearningRateMonitor()]).fit()
        # trainer.metrics["lr"] each epoch; History keeps the series
    """

    order = -50

    def __init__(self, log_momentum: bool = False, log_weight_decay: bool = False, *,
                 key_style: Literal["hookline", "lightning", "both"] = "hookline") -> None:
        self.log_momentum = bool(log_momentum)
        self.log_weight_decay = bool(log_weight_decay)
        check_choice("LearningRateMonitor", "key_style", key_style,
                     ("hookline", "lightning", "both"))
        self.key_style = key_style
        self._epoch: int | None = None  # the epoch whose start _values were read at
        self._values: dict[str, float] = {}

    @property
    def state_key(self) -> str:
        return config_key("LearningRateMonitor", log_momentum=self.log_momentum,
                          log_weight_decay=self.log_weight_decay, key_style=self.key_style)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self._epoch, "values": dict(self._values)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._epoch = state.get("epoch")
        self._values = dict(state.get("values") or {})

    def on_train_epoch_start(self, trainer: Any) -> None:
        # a resumed epoch (resume_batch > 0) starts again mid-way, its rate already stepped:
        # the values read at its real start came with the checkpoint
        if getattr(trainer, "resume_batch", 0) and self._epoch == trainer.epoch:
            return
        self._epoch, self._values = trainer.epoch, self.read(trainer)

    def on_train_epoch_end(self, trainer: Any) -> None:
        # read now only when the epoch's start was not seen (a checkpoint without this state)
        values = self._values if self._epoch == trainer.epoch else self.read(trainer)
        trainer.metrics.update(values)

    def read(self, trainer: Any) -> dict[str, float]:
        """The values of every optimizer of ``trainer`` now."""
        optimizers = getattr(trainer, "optimizers", None) or {"optimizer": trainer.optimizer}
        if len(optimizers) == 1:
            return self.values(trainer.optimizer)
        # several optimizers: hookline keys carry the optimizer's name (lr-generator...),
        # Lightning's count repeated classes (lr-Adam, lr-Adam-1)
        values: dict[str, float] = {}
        seen: dict[str, int] = {}
        for name, optimizer in optimizers.items():
            kind = type(optimizer).__name__
            repeat = seen.get(kind, 0)
            seen[kind] = repeat + 1
            values.update(self.values(
                optimizer, suffix=f"-{name}",
                lightning=f"lr-{kind}" + (f"-{repeat}" if repeat else "")))
        return values

    def values(self, optimizer: Any, *, suffix: str = "",
               lightning: str | None = None) -> dict[str, float]:
        """The values this callback records, for an optimizer (``suffix``: what its hookline
        keys carry when the trainer has several, ``"-generator"``)."""
        values: dict[str, float] = {}
        groups = optimizer.param_groups
        lightning = lightning or f"lr-{type(optimizer).__name__}"
        for index, group in enumerate(groups):
            keys: list[tuple[str, str]] = []  # (rate key, template for the other values)
            if self.key_style != "lightning":
                tail = suffix + (f"-group{index}" if index else "")
                keys.append((f"lr{tail}", "{}" + tail))
            if self.key_style != "hookline":
                name = lightning
                if len(groups) > 1:
                    name += f"/{group.get('name', f'pg{index + 1}')}"
                keys.append((name, name + "-{}"))
            for rate_key, template in keys:
                values[rate_key] = float(group["lr"])
                if self.log_momentum:
                    values[template.format("momentum")] = _momentum(group)
                if self.log_weight_decay:
                    values[template.format("weight_decay")] = float(
                        group.get("weight_decay", 0.0))
        return values


def _momentum(group: dict[str, Any]) -> float:
    """SGD's momentum, or Adam's first beta; 0 for optimizers without either."""
    momentum = group.get("momentum")
    if momentum is None and "betas" in group:
        momentum = group["betas"][0]
    return float(momentum) if momentum is not None else 0.0
