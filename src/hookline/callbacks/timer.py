"""Timer: end training gracefully when a time budget is spent (Lightning's ``Timer``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from hookline.callback import Callback

__all__ = ["Timer", "parse_duration"]

_INTERVALS = ("step", "epoch")
_now = time.monotonic  # the clock; tests replace it


def parse_duration(duration: str | timedelta | float) -> float:
    """Seconds in ``duration``: "DD:HH:MM:SS", a ``timedelta`` or a number of seconds."""
    if isinstance(duration, timedelta):
        seconds = duration.total_seconds()
    elif isinstance(duration, bool):
        raise TypeError(f"Timer(duration=...) must be 'DD:HH:MM:SS', a timedelta or seconds, "
                        f"got {duration!r}")
    elif isinstance(duration, (int, float)):
        seconds = float(duration)
    elif isinstance(duration, str):
        parts = duration.strip().split(":")
        try:
            numbers = [int(part) for part in parts]
        except ValueError:
            numbers = []
        if len(parts) != 4 or len(numbers) != 4 or min(numbers) < 0:
            raise ValueError(f"Timer(duration={duration!r}) must have the form 'DD:HH:MM:SS' "
                             f"(e.g. '00:12:00:00' for 12 hours), a timedelta or seconds")
        days, hours, minutes, secs = numbers
        seconds = float(((days * 24 + hours) * 60 + minutes) * 60 + secs)
    else:
        raise TypeError(f"Timer(duration=...) must be 'DD:HH:MM:SS', a timedelta or seconds, "
                        f"got {type(duration).__name__}: {duration!r}")
    if not seconds > 0:
        raise ValueError(f"Timer(duration={duration!r}) must be a positive time span")
    return seconds


class Timer(Callback):
    """Stop training once ``duration`` of training time has passed.

    Args:
        duration: the budget: "DD:HH:MM:SS" (e.g. "00:12:00:00"), a ``timedelta`` or seconds;
            None only measures time.
        interval: "step" checks after every training batch (the run ends within one batch of
            the limit), "epoch" checks at the end of each epoch (after validation).
        verbose: print a line when the limit stops training.

    The clock starts at ``on_train_start``. Stopping goes through ``trainer.request_stop``, so
    the current epoch still ends normally (validation, checkpoint, ``on_fit_epoch_end``) before
    ``on_train_end``. The elapsed time is part of ``state_dict()``, so a resumed run keeps
    counting from where the interrupted one stopped. ``elapsed`` and ``remaining`` are seconds.

    Example::

        from hookline.callbacks import Timer
        trainer = Trainer(model, loss="mse", train_data=(x, y), epochs=1000,
                          callbacks=[Timer(duration="00:00:30:00", interval="epoch")])
        trainer.fit()  # ends after the epoch during which 30 minutes passed
    """

    order = 50  # a stopper: after the callbacks that produce metrics

    def __init__(self, duration: str | timedelta | float | None = None, *,
                 interval: str = "step", verbose: bool = True) -> None:
        if interval not in _INTERVALS:
            raise ValueError(f"Timer(interval={interval!r}) must be 'step' or 'epoch'")
        self.duration = parse_duration(duration) if duration is not None else None
        self.interval = interval
        self.verbose = verbose
        self._offset = 0.0  # seconds from earlier (resumed) runs
        self._start: float | None = None
        self._end: float | None = None
        self._loaded = False

    @property
    def elapsed(self) -> float:
        """Training seconds so far, including those of runs this one resumed."""
        if self._start is None:
            return self._offset
        now = self._end if self._end is not None else _now()
        return self._offset + now - self._start

    @property
    def remaining(self) -> float | None:
        """Seconds left in the budget (None without a duration)."""
        return None if self.duration is None else max(0.0, self.duration - self.elapsed)

    def state_dict(self) -> dict[str, Any]:
        return {"elapsed": self.elapsed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._offset = float(state["elapsed"])
        self._loaded = True
        if self._start is not None:  # loaded mid-run: count from now
            self._start, self._end = _now(), None

    def hookline_handlers(self) -> dict[str, Callable[[Any], None]]:
        handlers: dict[str, Callable[[Any], None]] = {
            "on_train_start": self._begin, "on_fit_epoch_end": self._check,
            "on_train_end": self._finish}
        if self.interval == "step" and self.duration is not None:
            handlers["on_train_batch_end"] = self._check
        return handlers

    def _begin(self, trainer: Any) -> None:
        if not self._loaded:
            self._offset = 0.0
        self._loaded = False
        self._start, self._end = _now(), None

    def _check(self, trainer: Any) -> None:
        if self.duration is None or trainer.stop or self.elapsed < self.duration:
            return
        reason = f"Timer: the time limit of {timedelta(seconds=self.duration)} was reached"
        trainer.request_stop(reason)
        if self.verbose:
            print(f"{reason} (elapsed {timedelta(seconds=round(self.elapsed))}); "
                  f"stopping after epoch {trainer.epoch + 1}", flush=True)

    def _finish(self, trainer: Any) -> None:
        if self._start is not None and self._end is None:
            self._end = _now()
