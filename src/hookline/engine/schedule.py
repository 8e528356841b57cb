"""When a fit validates, how many batches each phase runs, and when it may stop.

The options carry Lightning's names (Keras' ``validation_freq`` maps onto
``check_val_every_n_epoch``; ``steps_per_epoch`` is Keras' ``limit_train_batches``):

* ``check_val_every_n_epoch``: validate after every n-th epoch, or after the 1-based epochs
  listed (Keras' list form of ``validation_freq``);
* ``val_check_interval``: also validate inside the epoch, every n training batches (an int,
  at most the epoch's batches) or every such fraction of the epoch (a float in (0, 1)), in
  the epochs that ``check_val_every_n_epoch`` validates (Lightning's rule);
* ``min_epochs`` / ``min_steps``: a stop asked for earlier (EarlyStopping) waits until both
  are reached (epochs count once complete: a stop asked inside an epoch that would complete
  min_epochs trains that epoch to its end); ``max_steps``: stop after that many optimizer
  steps, whatever min_epochs and min_steps say (Lightning's rule: the hard limit wins);
* ``num_sanity_val_steps``: validate that many batches before training starts (results
  discarded), so a bug in validation shows in seconds, not after the first epoch;
* ``limit_train_batches`` / ``limit_val_batches`` / ``limit_predict_batches``: a count, or a
  fraction of the data's batches; ``fast_dev_run``: one epoch of n batches (True: 1) of
  training and validation, no sanity check, no weights written (0 or False: off).

Everything is decided from the epoch, batch and step counters, which a checkpoint holds, so a
resumed run validates and stops where the uninterrupted one does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Schedule", "batch_limit", "check_limit"]

Limit = int | float | None


@dataclass(frozen=True)
class Schedule:
    """The validated options; ``Trainer`` reads them through the methods below."""

    check_val_every_n_epoch: int | frozenset[int] = 1
    val_check_interval: int | float | None = None
    min_epochs: int = 0
    min_steps: int = 0
    max_steps: int | None = None
    num_sanity_val_steps: int = 0
    limit_train_batches: Limit = None
    limit_val_batches: Limit = None
    limit_predict_batches: Limit = None

    @classmethod
    def build(cls, *, check_val_every_n_epoch: int | Sequence[int] = 1,
              val_check_interval: float | None = None, min_epochs: int = 0,
              min_steps: int = 0, max_steps: int | None = None, num_sanity_val_steps: int = 0,
              limit_train_batches: Limit = None, limit_val_batches: Limit = None,
              limit_predict_batches: Limit = None,
              fast_dev_run: bool | int = False) -> Schedule:
        """Check every option (errors name the option and the fix) and apply fast_dev_run."""
        every: int | frozenset[int]
        if isinstance(check_val_every_n_epoch, Sequence) and \
                not isinstance(check_val_every_n_epoch, str):
            epochs = list(check_val_every_n_epoch)
            if not epochs or not all(_is_int(e) and e >= 1 for e in epochs):
                raise ValueError(f"check_val_every_n_epoch (validation_freq) as a list names "
                                 f"the 1-based epochs to validate after, got {epochs!r}")
            every = frozenset(epochs)
        else:
            _check_int("check_val_every_n_epoch", check_val_every_n_epoch, low=1)
            every = int(check_val_every_n_epoch)
        if val_check_interval is not None:
            _check_limit("val_check_interval", val_check_interval)
        for count, number in (("min_epochs", min_epochs), ("min_steps", min_steps),
                              ("num_sanity_val_steps", num_sanity_val_steps)):
            _check_int(count, number, low=0)
        if max_steps is not None:
            _check_int("max_steps", max_steps, low=1)
        for option, limit in (("limit_train_batches", limit_train_batches),
                              ("limit_val_batches", limit_val_batches),
                              ("limit_predict_batches", limit_predict_batches)):
            if limit is not None:
                _check_limit(option, limit)
        if fast_dev_run is not None and not isinstance(fast_dev_run, bool):
            _check_int("fast_dev_run", fast_dev_run, low=0)  # 0 or False: off (Lightning's)
        if fast_dev_run:
            runs = 1 if fast_dev_run is True else int(fast_dev_run)
            limit_train_batches = limit_val_batches = limit_predict_batches = runs
            num_sanity_val_steps, every, val_check_interval = 0, 1, None
        return cls(every, val_check_interval, int(min_epochs), int(min_steps),
                   None if max_steps is None else int(max_steps), int(num_sanity_val_steps),
                   limit_train_batches, limit_val_batches, limit_predict_batches)

    def validates_after(self, epoch: int) -> bool:
        """Whether validation runs at the end of 0-based ``epoch``."""
        every = self.check_val_every_n_epoch
        if isinstance(every, frozenset):
            return epoch + 1 in every
        return (epoch + 1) % every == 0

    def mid_epoch_interval(self, batches: int | None) -> int | None:
        """Every how many training batches to validate inside an epoch (None: never), for
        epochs of ``batches`` training batches (None: unknown)."""
        interval = self.val_check_interval
        if interval is None:
            return None
        if isinstance(interval, float):
            if batches is None:
                raise ValueError("val_check_interval as a fraction needs train_data with a "
                                 "length; give a number of batches instead")
            return max(1, int(batches * interval))
        if batches is not None and interval > batches:
            raise ValueError(f"val_check_interval ({interval}) must be less than or equal to "
                             f"the number of training batches per epoch ({batches}), or it "
                             f"never validates inside an epoch; give at most {batches}, a "
                             f"fraction of the epoch (e.g. 0.5), or leave it out to validate "
                             f"at each epoch's end")
        return int(interval)

    def may_stop(self, epochs_done: int, steps: int) -> bool:
        """Whether a requested stop may happen now: min_epochs and min_steps reached, or
        max_steps, which ends training even before them (as in Lightning)."""
        if self.max_steps is not None and steps >= self.max_steps:
            return True
        return epochs_done >= self.min_epochs and steps >= self.min_steps

    def ends_epoch(self, epoch: int, steps: int, *, stop: bool, skip: bool,
                   alone: bool) -> bool:
        """Whether 0-based ``epoch``'s batches end after the current one: a skip, or a stop
        that min_epochs (``epoch`` epochs complete) and min_steps do not hold back. With
        several ranks (not ``alone``) only at max_steps, which every rank reaches at the same
        step; any other stop waits for the epoch's end, so no rank waits for another."""
        if not (skip or stop and self.may_stop(epoch, steps)):
            return False
        return alone or self.max_steps is not None and steps >= self.max_steps


def batch_limit(limit: Limit, data: Any, name: str) -> int | None:
    """A batch count from a limit (a count, or a fraction of ``len(data)``); None: no limit."""
    if limit is None:
        return None
    if isinstance(limit, float):
        if limit >= 1.0:
            return None
        try:
            size = len(data)
        except TypeError:
            raise ValueError(f"{name}={limit} is a fraction of the batches, but the data has "
                             f"no length; give a number of batches instead") from None
        return max(1, math.floor(size * limit))
    return int(limit)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(name: str, value: Any, *, low: int) -> None:
    if not _is_int(value) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_limit(name: str, value: Any) -> None:
    if _is_int(value) and value >= 1:
        return
    if isinstance(value, float) and 0.0 < value <= 1.0:
        return
    raise ValueError(f"{name} must be a number of batches (an integer >= 1) or a fraction in "
                     f"(0, 1], got {value!r}")


check_limit = _check_limit  # the engines' and doors' own limits (steps=, limit_batches=)
