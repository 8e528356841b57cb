"""ThroughputMonitor: training samples and optimizer steps per second, per epoch."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from hookline.callback import Callback

__all__ = ["ThroughputMonitor"]

_now = time.perf_counter  # the clock; tests replace it


def _leading_size(batch: Any) -> int:
    """Samples in a batch: the first dimension of its inputs (no device sync: shapes live on
    the host)."""
    if isinstance(batch, dict):
        batch = next(iter(batch.values()), None)
    elif isinstance(batch, (tuple, list)):
        batch = batch[0] if batch else None
    shape = getattr(batch, "shape", None)
    if shape is not None and len(shape):
        return int(shape[0])
    try:
        return len(batch)  # type: ignore[arg-type]
    except TypeError:
        return 1


class ThroughputMonitor(Callback):
    """Add ``samples_per_sec`` and ``steps_per_sec`` to ``trainer.metrics`` every epoch.

    Args:
        batch_size_fn: ``fn(batch) -> int``, the samples in a batch of a custom type
            (default: the first dimension of the batch's inputs).
        prefix: put before both names (e.g. "train/").

    The time runs from ``on_train_epoch_start`` to ``on_train_epoch_end``, so validation is
    not counted. Per batch it only reads the batch's shape, never a tensor's value: no
    host-device sync. The numbers are written at ``on_train_epoch_end``, so every callback of
    ``on_fit_epoch_end`` (loggers, History) sees them. Steps are optimizer steps. An epoch
    resumed mid-way counts only its remaining batches; one resumed after its last batch gets
    no values.

    Example::

        from hookline.callbacks import ThroughputMonitor
        history = Model(net, loss="mse").fit(x, y, epochs=2, callbacks=[ThroughputMonitor()])
        history.history["samples_per_sec"]  # two values
    """

    order = -50  # produces metrics: before the callbacks that read them

    def __init__(self, *, batch_size_fn: Callable[[Any], int] | None = None,
                 prefix: str = "") -> None:
        if batch_size_fn is not None and not callable(batch_size_fn):
            raise TypeError(f"ThroughputMonitor(batch_size_fn=...) must be callable "
                            f"fn(batch) -> int, got {batch_size_fn!r}")
        if not isinstance(prefix, str):
            raise TypeError(f"ThroughputMonitor(prefix=...) must be a string, got {prefix!r}")
        self.batch_size_fn = batch_size_fn or _leading_size
        self.prefix = prefix
        self._started = 0.0
        self._first_step = 0
        self._samples = 0
        self._batches = 0

    def on_train_epoch_start(self, trainer: Any) -> None:
        self._samples = self._batches = 0
        self._first_step = trainer.step
        self._started = _now()

    def on_train_batch_end(self, trainer: Any) -> None:
        self._samples += self.batch_size_fn(trainer.batch)
        self._batches += 1

    def on_train_epoch_end(self, trainer: Any) -> None:
        if not self._batches:
            return  # a resume into an epoch whose batches were already done: nothing to time
        # The engine has read the epoch's loss before this event, which waits for queued
        # device work, so the time below includes all of the epoch's computation.
        seconds = max(_now() - self._started, 1e-9)
        trainer.metrics[f"{self.prefix}samples_per_sec"] = self._samples / seconds
        trainer.metrics[f"{self.prefix}steps_per_sec"] = (trainer.step - self._first_step) / seconds
