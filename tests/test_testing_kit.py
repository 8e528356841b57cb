"""hookline.testing's ScriptedMetrics: scripted values reach the callbacks under test."""

from __future__ import annotations

import pytest

import hookline
from hookline.callbacks import EarlyStopping
from hookline.testing import RecordingCallback, ScriptedMetrics, tiny_data, tiny_model


def fit(callbacks, epochs, **options):
    trainer = hookline.Trainer(tiny_model(), loss="cross_entropy", train_data=tiny_data(16),
                               batch_size=16, epochs=epochs, callbacks=callbacks, verbose=0,
                               device="cpu", seed=0, **options)
    trainer.fit()
    return trainer


def test_values_of_each_epoch_reach_readers_registered_before_it():
    stopper = EarlyStopping(patience=1)
    seen = RecordingCallback(capture=("metrics",), events=("on_fit_epoch_end",))
    trainer = fit([stopper, seen, ScriptedMetrics({"val_loss": [3, 2, 2.5, 2.5],
                                                   "val_accuracy": [0.1, 0.2, 0.3, 0.4]})],
                  epochs=4)
    assert stopper.stopped_epoch == 2 and trainer.epoch == 2
    assert [r["metrics"]["val_accuracy"] for _, r in seen.records] == [0.1, 0.2, 0.3]
    history = trainer.callbacks.find(hookline.History)[0].history
    assert history["val_loss"] == [3, 2, 2.5]


def test_the_absolute_epoch_picks_the_value():
    seen = RecordingCallback(capture=("metrics",), events=("on_fit_epoch_end",))
    fit([seen, ScriptedMetrics({"val_loss": [9, 9, 1.5]})], epochs=3, initial_epoch=2)
    assert [r["metrics"]["val_loss"] for _, r in seen.records] == [1.5]


def test_too_few_values_and_bad_input_are_clear_errors():
    with pytest.raises(IndexError, match=r"2 values for 'val_loss' but the run reached "
                                         r"epoch 2 \(0-based\)"):
        fit([ScriptedMetrics({"val_loss": [1, 2]})], epochs=3)
    with pytest.raises(TypeError, match=r"must map metric names to one value per epoch"):
        ScriptedMetrics([1, 2, 3])
    with pytest.raises(TypeError, match=r"must map metric names"):
        ScriptedMetrics({"val_loss": "123"})


def test_crash_at_kills_the_run_at_the_nth_firing_of_its_event():
    from hookline.testing import Crash, crash_at
    recorder = RecordingCallback()
    with pytest.raises(Crash, match="on_train_batch_end #3"):
        fit([recorder, crash_at("on_train_batch_end", 3)], epochs=5)
    assert recorder.events.count("on_train_batch_end") == 3  # epochs of one batch: epoch 3
    assert "on_train_epoch_end" in recorder.events and recorder.events.count(
        "on_train_epoch_end") == 2  # the third epoch never ended
    with pytest.raises(ValueError, match="on_train_batch_ends"):  # a misspelt event: the
        crash_at("on_train_batch_ends", 1)                       # LambdaCallback's own error


def test_recording_callback_keeps_what_the_metrics_held_at_the_event():
    """The metrics recorded at on_train_epoch_end are those of that moment (the train loss),
    not the same dict after validation added val_* to it."""
    x, y = tiny_data(samples=16)
    recorder = RecordingCallback(capture=("metrics", "epoch"),
                                 events=("on_train_epoch_end", "on_fit_epoch_end"))
    hookline.Trainer(tiny_model(), loss="cross_entropy", train_data=(x, y), val_data=(x, y),
                     epochs=1, verbose=0, callbacks=[recorder]).fit()
    (_, at_train_end), (_, at_fit_end) = recorder.records
    assert sorted(at_train_end["metrics"]) == ["loss"]
    assert {"loss", "val_loss"} <= set(at_fit_end["metrics"])
