"""The validations a ``val_check_interval`` runs inside epochs, as the step loggers see them.

Those validations fire ``on_mid_epoch_val_end`` with their ``val_*`` in ``trainer.metrics``.
TensorBoard and MLflow keep a run's epoch values at the epoch number, so every validation of
such a run (the epoch-end one too, for an unbroken curve) is also logged as ``step/val_*`` at
``trainer.step``; W&B, whose steps only go up, logs the whole run at ``trainer.step`` instead.
"""

from __future__ import annotations

from typing import Any

from hookline.plain_number import plain_number

__all__ = ["at_step", "val_values", "validates_mid_epoch"]


def validates_mid_epoch(trainer: Any) -> bool:
    """Whether this fit validates inside its epochs (``Trainer(val_check_interval=...)``)."""
    schedule = getattr(trainer, "schedule", None)
    return getattr(schedule, "val_check_interval", None) is not None


def val_values(trainer: Any) -> dict[str, float]:
    """The latest validation's numeric ``val_*`` (and ``val/<part>``) of ``trainer.metrics``."""
    numbers = {name: plain_number(value) for name, value in trainer.metrics.items()
               if name.startswith(("val_", "val/"))}
    return {name: number for name, number in numbers.items() if number is not None}


def at_step(trainer: Any) -> dict[str, float]:
    """``val_values`` as ``step/<name>``; empty at an epoch end that did not validate or of a
    run without mid-epoch validation (its epoch values say it all)."""
    if not validates_mid_epoch(trainer) or getattr(trainer, "validation_skipped", False):
        return {}
    return {f"step/{name}": value for name, value in val_values(trainer).items()}
