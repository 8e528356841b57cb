"""Failure containment: per-callback on_error="raise" | "warn" | "disable", and the defaults."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

import hookline
from hookline.callbacks import (
    BackupAndRestore,
    CSVLogger,
    ModelCheckpoint,
    OnExceptionCheckpoint,
    ProgressBar,
)
from hookline.testing import tiny_data, tiny_model

EPOCHS, BATCHES = 3, 4


class FlakyLogger(hookline.Callback):
    """A logger whose server is down: every call raises."""

    on_error = "warn"

    def __init__(self) -> None:
        self.calls = 0

    def on_train_batch_end(self, trainer: Any) -> None:
        self.calls += 1
        raise ConnectionError("tracking server unreachable")


def fit(*callbacks: Any, **options: Any) -> hookline.Trainer:
    trainer = hookline.Trainer(tiny_model(), loss="cross_entropy", train_data=tiny_data(32),
                               epochs=EPOCHS, batch_size=8, verbose=0, device="cpu", **options)
    for callback in callbacks:
        trainer.add_callback(callback)
    trainer.fit()
    return trainer


def run_recording_warnings(*callbacks: Any, **options: Any) -> tuple[hookline.Trainer,
                                                                      list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = fit(*callbacks, **options)
    return trainer, [str(warning.message) for warning in caught]


def test_a_logger_failing_on_every_call_does_not_stop_training() -> None:
    logger = FlakyLogger()
    trainer, messages = run_recording_warnings(logger)
    assert trainer.epoch == EPOCHS - 1 and logger.calls == EPOCHS * BATCHES
    assert len(messages) == 2  # once when it first fails, once with the count at the end
    assert "callback FlakyLogger failed at 'on_train_batch_end' with ConnectionError: " \
           "tracking server unreachable; training continues" in messages[0]
    assert f"callback FlakyLogger failed {EPOCHS * BATCHES} time(s) during the run " \
           "(events: on_train_batch_end; first: ConnectionError" in messages[1]


def test_disable_stops_calling_after_max_failures() -> None:
    logger = FlakyLogger()
    logger.on_error, logger.max_failures = "disable", 2
    trainer, messages = run_recording_warnings(logger)
    assert logger.calls == 2 and trainer.epoch == EPOCHS - 1
    assert any("FlakyLogger disabled after 2 failures" in message for message in messages)
    assert "failed 2 time(s)" in messages[-1]


def test_raise_stops_training_with_the_original_exception_named() -> None:
    class Guard(hookline.Callback):
        def on_train_batch_end(self, trainer: Any) -> None:
            raise ValueError("the data looks wrong")

    with pytest.raises(ValueError, match="the data looks wrong") as caught:
        fit(Guard())
    assert "hookline: raised by callback Guard at event 'on_train_batch_end'" in \
        caught.value.__notes__


def test_the_policy_can_be_chosen_at_registration() -> None:
    logger = FlakyLogger()
    logger.on_error = "raise"
    trainer = hookline.Trainer(tiny_model(), loss="cross_entropy", train_data=tiny_data(32),
                               epochs=1, batch_size=8, verbose=0)
    trainer.add_callback(logger, on_error="warn")
    with pytest.warns(RuntimeWarning, match="FlakyLogger failed"):
        trainer.fit()
    assert logger.calls == BATCHES


def test_defaults_raise_for_data_guards_and_warn_for_loggers_and_progress(tmp_path) -> None:
    guards = [BackupAndRestore(tmp_path), OnExceptionCheckpoint(tmp_path),
              ModelCheckpoint(dirpath=tmp_path)]
    assert [guard.on_error for guard in guards] == ["raise"] * 3
    assert hookline.Callback.on_error == "raise"  # a user's callback guards data by default
    observers = [ProgressBar(), CSVLogger(tmp_path / "log.csv")]
    assert [observer.on_error for observer in observers] == ["warn"] * 2


def test_a_failing_warn_callback_at_teardown_does_not_hide_the_run_error() -> None:
    class BrokenCleanup(hookline.Callback):
        on_error = "warn"

        def teardown(self, engine: Any) -> None:
            raise RuntimeError("cleanup failed")

    class Guard(hookline.Callback):
        def on_train_epoch_end(self, trainer: Any) -> None:
            raise KeyError("real problem")

    with warnings.catch_warnings(record=True) as caught, pytest.raises(KeyError,
                                                                       match="real problem"):
        warnings.simplefilter("always")
        fit(BrokenCleanup(), Guard())
    assert any("BrokenCleanup failed at 'teardown'" in str(w.message) for w in caught)
