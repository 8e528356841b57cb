"""The shared "is it better?" logic of the callbacks that watch a metric.

EarlyStopping, ModelCheckpoint and ReduceLROnPlateau all read one value from ``trainer.metrics``
at ``on_fit_epoch_end`` and compare it with the best seen so far. Keeping the mode inference,
the ``min_delta`` comparison and the missing-metric policy here means the three agree on what
"improved" means.
"""

from __future__ import annotations

import math
from typing import Any

from hookline.metric_direction import direction
from hookline.user_warning import warn

__all__ = ["Monitor", "check_choice", "check_non_negative", "config_key", "infer_mode",
           "read_metric"]

_MODES = ("auto", "min", "max")


def infer_mode(monitor: str, mode: str, *, owner: str) -> str:
    """Resolve ``mode="auto"`` from the metric's name ("min" or "max"); check explicit modes."""
    check_choice(owner, "mode", mode, _MODES)
    if mode != "auto":
        return mode
    inferred = direction(monitor)
    if inferred is not None:
        return inferred
    raise ValueError(
        f"{owner}(monitor={monitor!r}, mode='auto') cannot tell whether {monitor!r} should go "
        f"down or up: names with loss/error infer 'min', names with acc/accuracy/f1/map/auc/"
        f"precision/recall/iou/dice infer 'max'. Pass mode='min' or mode='max'.")


def check_choice(owner: str, name: str, value: Any, allowed: tuple[Any, ...]) -> None:
    """Raise ValueError naming the option, the value and the allowed values."""
    if value not in allowed:
        raise ValueError(f"{owner}({name}={value!r}) is not allowed; {name} must be one of "
                         f"{', '.join(repr(choice) for choice in allowed)}")


def check_non_negative(owner: str, name: str, value: Any, *, integer: bool = False) -> None:
    """Raise ValueError unless ``value`` is a number >= 0 (an int when ``integer``)."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not value >= 0:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{owner}({name}={value!r}) is not allowed; {name} must be {kind} >= 0")


def config_key(owner: str, **config: Any) -> str:
    """A checkpoint key that tells apart two instances configured differently."""
    parts = ", ".join(f"{name}={value!r}" for name, value in config.items())
    return f"{owner}{{{parts}}}"


class Monitor:
    """One monitored metric: its direction, the improvement threshold and how to read it.

    ``is_better(current, reference)`` is True when ``current`` beats ``reference`` by more than
    ``min_delta`` in the monitored direction; NaN never beats anything. ``read(trainer)`` returns
    the metric as a float, or None when it is missing and ``strict`` is False (with a warning).
    """

    def __init__(self, monitor: str, *, mode: str = "auto", min_delta: float = 0.0,
                 strict: bool = True, owner: str) -> None:
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"{owner}(monitor={monitor!r}) is not allowed; monitor must be the "
                             f"name of a metric in trainer.metrics, such as 'val_loss'")
        check_non_negative(owner, "min_delta", min_delta)
        self.name = monitor
        self.owner = owner
        self.mode = infer_mode(monitor, mode, owner=owner)
        self.min_delta = float(min_delta)
        self.strict = bool(strict)

    @property
    def worst(self) -> float:
        """The starting "best": anything finite beats it."""
        return math.inf if self.mode == "min" else -math.inf

    def is_better(self, current: float, reference: float | None) -> bool:
        if reference is None:
            return not math.isnan(current)
        if self.mode == "min":
            return current < reference - self.min_delta
        return current > reference + self.min_delta

    def reached(self, current: float, threshold: float) -> bool:
        """Whether ``current`` is at least as good as ``threshold`` (no ``min_delta``)."""
        return current <= threshold if self.mode == "min" else current >= threshold

    def read(self, trainer: Any) -> float | None:
        return read_metric(trainer, self.name, owner=self.owner, strict=self.strict)


def read_metric(trainer: Any, name: str, *, owner: str, strict: bool) -> float | None:
    """``trainer.metrics[name]`` as a float (None counts as NaN). When it is missing: raise a
    ValueError listing the metrics there are (``strict``), or warn and return None. A
    validation metric on an epoch that did not validate is None, silently: the monitor
    skips that epoch, as Keras' and Lightning's do with a validation frequency."""
    metrics = trainer.metrics
    if name.startswith(("val_", "val/")) and getattr(trainer, "validation_skipped", False):
        return None  # an epoch without validation (check_val_every_n_epoch): nothing to read
    if name in metrics:
        value = metrics[name]
        return float(value) if value is not None else math.nan
    message = (f"{owner} monitors {name!r}, which is not among this epoch's metrics "
               f"{sorted(metrics)}. Monitor one of them (validation metrics need val_data), or "
               f"pass strict=False to skip epochs where it is missing.{_producer_hint(name)}")
    if strict:
        raise ValueError(message)
    warn(message, RuntimeWarning)
    return None


def _producer_hint(name: str) -> str:
    """Which callback writes a well-known metric name that is missing."""
    if name.startswith("lr-"):
        return (" Lightning's learning-rate keys (lr-SGD, lr-Adam/pg1...) are written by "
                "LearningRateMonitor(key_style='lightning').")
    if name == "learning_rate":
        return " Keras' learning_rate is written by LearningRateScheduler."
    return ""


def chosen_optimizer(trainer: Any, which: str | int | None, owner: str) -> Any:
    """The optimizer an LR callback acts on: ``which`` (a name or an index among
    ``trainer.optimizers``), or the trainer's first optimizer when None."""
    if which is None:
        return trainer.optimizer
    optimizers = getattr(trainer, "optimizers", None) or {"optimizer": trainer.optimizer}
    names = list(optimizers)
    if isinstance(which, int) and not isinstance(which, bool) and 0 <= which < len(names):
        return optimizers[names[which]]
    if isinstance(which, str) and which in optimizers:
        return optimizers[which]
    raise ValueError(f"{owner}(optimizer={which!r}) names no optimizer of this trainer; its "
                     f"optimizers are {names} (or their indexes)")
