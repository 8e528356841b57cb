"""TerminateOnNaN: stop training when the training loss becomes NaN or infinite."""

from __future__ import annotations

from typing import Any

import torch

from hookline.callback import Callback
from hookline.callbacks.monitor import config_key

__all__ = ["NonFiniteLossError", "TerminateOnNaN"]


class NonFiniteLossError(RuntimeError):
    """Raised by ``TerminateOnNaN(raise_error=True)``; a RuntimeError as in Keras."""


class TerminateOnNaN(Callback):
    """Stop training after the batch whose loss is NaN or infinite.

    By default it asks the trainer to stop (``trainer.request_stop``): the current epoch ends
    (validation and checkpoints still run), then ``on_train_end`` runs as usual, so
    EarlyStopping can restore its best weights. With ``raise_error=True`` it raises
    ``NonFiniteLossError`` (a RuntimeError) instead, and the run ends through ``on_exception``.

    Cost: each batch it adds ``torch.isfinite(loss)`` to a flag kept on the loss's device (no
    synchronisation) and reads that flag on the host every ``check_every`` batches. Reading it
    waits for the device to finish the batch, so on a GPU ``check_every=1`` (the default: stop
    right after the bad batch, what this callback promises) gives up some overlap of the next
    batch's Python work with the GPU's. ``check_every=N`` reads once per N batches (and at the
    epoch's end): the stop comes at most N-1 batches late, but the reported batch is still the
    first bad one, because its index is recorded on the device too. On the CPU the read is free.

    Args:
        raise_error: raise instead of stopping gracefully.
        check_every: batches between host reads of the flag (>= 1).

    Example::

        Trainer(..., callbacks=[TerminateOnNaN()]).fit()
        trainer.stop_reason  # "TerminateOnNaN: loss is nan at epoch 3, batch 17"
    """

    order = -90
    on_error = "raise"

    def __init__(self, raise_error: bool = False, *, check_every: int = 1) -> None:
        if isinstance(check_every, bool) or not isinstance(check_every, int) or check_every < 1:
            raise ValueError(f"TerminateOnNaN(check_every={check_every!r}) is not allowed; "
                             f"check_every must be an integer >= 1")
        self.raise_error = bool(raise_error)
        self.check_every = check_every
        self.stopped_epoch = 0
        self.stopped_batch = 0
        self._bad: torch.Tensor | None = None
        self._first: torch.Tensor | None = None
        self._value: torch.Tensor | None = None
        self._seen = 0

    @property
    def state_key(self) -> str:
        return config_key("TerminateOnNaN", raise_error=self.raise_error)

    def hookline_handlers(self) -> dict[str, Any]:
        handlers = {"on_train_start": self.on_train_start,
                    "on_train_batch_end": self.on_train_batch_end}
        if self.check_every > 1:  # only the deferred read keeps per-epoch device flags
            handlers["on_train_epoch_start"] = self.on_train_epoch_start
            handlers["on_train_epoch_end"] = self.on_train_epoch_end
        return handlers

    def on_train_start(self, trainer: Any) -> None:
        self.stopped_epoch = 0
        self.stopped_batch = 0

    def on_train_epoch_start(self, trainer: Any) -> None:
        self._bad = self._first = self._value = None
        self._seen = 0

    def on_train_batch_end(self, trainer: Any) -> None:
        loss = trainer.loss
        if loss is None:
            return
        loss = loss.detach()
        if self.check_every == 1:  # the common case: one host read per batch, nothing kept
            if not bool(torch.isfinite(loss)):
                self._stop(trainer, trainer.batch_i, float(loss))
            return
        bad = ~torch.isfinite(loss)
        # the three are set together, so the check on _first and _value only informs mypy
        if self._bad is None or self._first is None or self._value is None:
            self._bad = bad
            self._first = torch.where(bad, trainer.batch_i, -1)
            self._value = loss.clone()
        else:
            new = bad & ~self._bad  # the first bad batch keeps its index and value
            self._first = torch.where(new, trainer.batch_i, self._first)
            self._value = torch.where(new, loss, self._value)
            self._bad = self._bad | bad
        self._seen += 1
        if self._seen % self.check_every == 0:
            self._check(trainer)

    def on_train_epoch_end(self, trainer: Any) -> None:
        if self._bad is not None and self._seen % self.check_every:
            self._check(trainer)

    def _check(self, trainer: Any) -> None:
        first, last_value = self._first, self._value
        if self._bad is None or first is None or last_value is None:
            return  # nothing recorded since the last report
        if not bool(self._bad):  # the one host read (a sync on GPU)
            return
        batch, value = int(first), float(last_value)
        self._bad = None  # reported once
        self._stop(trainer, batch, value)

    def _stop(self, trainer: Any, batch: int, value: float) -> None:
        self.stopped_epoch, self.stopped_batch = trainer.epoch, batch
        message = f"loss is {value} at epoch {trainer.epoch}, batch {batch}"
        if self.raise_error:
            raise NonFiniteLossError(f"TerminateOnNaN: {message}; training stopped. Lower the "
                                     f"learning rate, clip gradients or check the data")
        trainer.request_stop(f"TerminateOnNaN: {message}")
