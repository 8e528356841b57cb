"""ReduceLROnPlateau: lower the learning rate when a monitored metric stops improving."""

from __future__ import annotations

from typing import Any

from hookline.callback import Callback
from hookline.callbacks.lr_scheduler import get_lr, set_lr
from hookline.callbacks.monitor import Monitor, check_non_negative, chosen_optimizer, config_key

__all__ = ["ReduceLROnPlateau"]

# Below this difference a reduction changes nothing worth a message (torch uses the same eps).
_EPS = 1e-8


class ReduceLROnPlateau(Callback):
    """Multiply every param group's learning rate by ``factor`` after ``patience`` epochs
    without improvement of ``monitor``, never going below ``min_lr``.

    It acts at ``on_fit_epoch_end`` (after validation), before checkpoints are written, so a
    checkpoint holds the reduced rate and this callback's counters.

    As in Keras 3, the rate the epoch trained with (the first group's, before any reduction)
    is put in the epoch's metrics as ``"learning_rate"`` at ``on_train_epoch_end``, so
    History, CSVLogger and the loggers get it.

    Args:
        monitor: the metric in ``trainer.metrics`` to watch (default ``"val_loss"``).
        factor: the multiplier, 0 < factor < 1.
        patience: the rate is reduced at the ``patience``-th consecutive epoch without
            improvement (Keras' count; torch's scheduler waits one epoch more).
        mode: "min", "max" or "auto" (inferred from the metric's name).
        min_delta: an improvement must beat the best by more than this (absolute).
        cooldown: epochs after a reduction that do not count towards ``patience``.
        min_lr: the lowest rate, one float or one per param group.
        strict: a missing metric raises (True) or warns and skips the epoch (False).
        verbose: print each reduction.

    ``num_reductions`` counts the reductions so far.

    Example::

        Trainer(..., callbacks=[ReduceLROnPlateau("val_loss", factor=0.5, patience=2,
                                                  cooldown=1, min_lr=1e-5)])
    """

    order = 20
    on_error = "raise"

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 verbose: int = 0, mode: str = "auto", min_delta: float = 1e-4,
                 cooldown: int = 0, min_lr: float | list[float] = 0.0, *,
                 strict: bool = True, optimizer: str | int | None = None) -> None:
        owner = "ReduceLROnPlateau"
        self.optimizer_choice = optimizer  # which of several optimizers (None: the first)
        self.monitor = Monitor(monitor, mode=mode, min_delta=min_delta, strict=strict,
                               owner=owner)
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or \
                not 0.0 < factor < 1.0:
            raise ValueError(f"{owner}(factor={factor!r}) is not allowed; factor multiplies the "
                             f"learning rate, so it must be between 0 and 1 (e.g. 0.1 or 0.5)")
        check_non_negative(owner, "patience", patience, integer=True)
        check_non_negative(owner, "cooldown", cooldown, integer=True)
        for value in (min_lr if isinstance(min_lr, (list, tuple)) else [min_lr]):
            check_non_negative(owner, "min_lr", value)
        self.factor = float(factor)
        self.patience = patience
        self.cooldown = cooldown
        self.min_lr = min_lr
        self.verbose = verbose
        self._loaded = False
        self._reset()

    @property
    def mode(self) -> str:
        return self.monitor.mode

    @property
    def state_key(self) -> str:
        return config_key("ReduceLROnPlateau", monitor=self.monitor.name, mode=self.mode)

    def _reset(self) -> None:
        self.best: float = self.monitor.worst
        self.wait = 0
        self.cooldown_counter = 0
        self.num_reductions = 0

    def on_train_start(self, trainer: Any) -> None:
        if not self._loaded:
            self._reset()
        self._loaded = False
        groups = chosen_optimizer(trainer, self.optimizer_choice, "ReduceLROnPlateau").param_groups
        if isinstance(self.min_lr, (list, tuple)) and len(self.min_lr) != len(groups):
            raise ValueError(f"ReduceLROnPlateau(min_lr={self.min_lr!r}) gives "
                             f"{len(self.min_lr)} values but the optimizer has {len(groups)} "
                             f"param groups; pass one float or one value per group")

    def on_train_epoch_end(self, trainer: Any) -> None:
        optimizer = chosen_optimizer(trainer, self.optimizer_choice, "ReduceLROnPlateau")
        trainer.metrics["learning_rate"] = get_lr(optimizer.param_groups[0])

    def on_fit_epoch_end(self, trainer: Any) -> None:
        current = self.monitor.read(trainer)
        if current is None:
            return
        if self.monitor.is_better(current, self.best):
            self.best = current
            self.wait = 0
        elif self.cooldown_counter > 0:
            self.wait = 0  # epochs right after a reduction do not count
        else:
            self.wait += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
        if self.wait >= max(self.patience, 1):
            self._reduce(trainer)
            self.cooldown_counter = self.cooldown
            self.wait = 0

    def _reduce(self, trainer: Any) -> None:
        groups = chosen_optimizer(trainer, self.optimizer_choice, "ReduceLROnPlateau").param_groups
        floors = list(self.min_lr) if isinstance(self.min_lr, (list, tuple)) \
            else [self.min_lr] * len(groups)
        reduced = False
        for index, (group, floor) in enumerate(zip(groups, floors)):
            old = get_lr(group)
            new = max(old * self.factor, float(floor))
            if old - new > _EPS:
                set_lr(group, new)
                reduced = True
                if self.verbose:
                    print(f"Epoch {trainer.epoch}: ReduceLROnPlateau reduced the learning rate "
                          f"of group {index} from {old:.6g} to {new:.6g}")
        if reduced:
            self.num_reductions += 1

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait, "cooldown_counter": self.cooldown_counter,
                "num_reductions": self.num_reductions}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])
        self.wait = int(state["wait"])
        self.cooldown_counter = int(state["cooldown_counter"])
        self.num_reductions = int(state["num_reductions"])
        self._loaded = True
