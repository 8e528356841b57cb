"""When a fit validates, how many batches each phase runs, and when it may stop (Lightning's
and Keras' options), exact under resume."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

import hookline
from hookline.callbacks import EarlyStopping, OnExceptionCheckpoint
from hookline.testing import (
    Crash,
    RecordingCallback,
    ScriptedMetrics,
    crash_at,
    tiny_data,
    tiny_model,
)


def make(callbacks: list[Any] = (), **options: Any) -> hookline.Trainer:
    settings: dict[str, Any] = dict(loss="cross_entropy", train_data=tiny_data(48),
                                    val_data=tiny_data(16, seed=1), batch_size=8, epochs=4,
                                    seed=0, device="cpu", verbose=0)
    settings.update(options)
    return hookline.Trainer(tiny_model(), callbacks=list(callbacks), **settings)


def validations(trainer: hookline.Trainer) -> list[tuple[int, int]]:
    """Records (epoch, training batch_i) at each validation's start, from now on."""
    starts: list[tuple[int, int]] = []
    trainer.add_callback("on_val_start", lambda v: starts.append((v.trainer.epoch,
                                                                  v.trainer.batch_i)))
    return starts


def test_validation_every_n_epochs_or_after_listed_epochs() -> None:
    for every, expected in [(2, [1, 3]), ([1, 4], [0, 3])]:
        trainer = make(check_val_every_n_epoch=every)
        starts = validations(trainer)
        trainer.fit()
        assert [epoch for epoch, _ in starts] == expected
        history = trainer.callbacks.find(hookline.History)[0].history
        assert len(history["val_loss"]) == 4  # an empty cell where no validation ran
        assert [value is not None for value in history["val_loss"]] == \
            [epoch in expected for epoch in range(4)]


def test_keras_validation_freq_and_a_monitor_skip_unvalidated_epochs() -> None:
    x, y = tiny_data(48)
    model = hookline.Model(tiny_model(), loss="cross_entropy", device="cpu")
    stopper = EarlyStopping(monitor="val_loss", patience=1)
    history = model.fit(x, y, epochs=4, batch_size=8, validation_split=0.25, verbose=0,
                        validation_freq=2, callbacks=[stopper])
    assert [value is not None for value in history.history["val_loss"]] == \
        [False, True, False, True]  # the stopper saw only epochs 2 and 4


def test_val_check_interval_validates_inside_the_epoch() -> None:
    for interval, starts in [(2, [1, 3]), (0.5, [2])]:  # 6 batches per epoch
        trainer = make(val_check_interval=interval, epochs=1)
        seen = validations(trainer)
        trainer.fit()
        assert seen == [(0, b) for b in starts] + [(0, 5)]


def test_a_mid_epoch_validation_reaches_the_metrics_and_its_event_history_stays_per_epoch(
        ) -> None:
    """Each val_check_interval validation puts its val_* into trainer.metrics and fires
    on_mid_epoch_val_end after its batch's on_train_batch_end; History keeps one row an epoch."""
    trainer = make(val_check_interval=2, epochs=2)  # 6 batches an epoch
    validated: list[tuple[int, float]] = []
    trainer.add_callback("on_val_end", lambda v: validated.append((v.trainer.step,
                                                                   v.metrics["loss"])))
    events: list[tuple[str, int]] = []
    trainer.add_callback("on_train_batch_end", lambda t: events.append(("batch_end", t.step)))
    trainer.add_callback("on_mid_epoch_val_end", lambda t: events.append(
        ("mid_val", t.step, t.metrics["val_loss"], t.val_metrics["loss"])))
    trainer.fit()
    mid = [(step, loss) for step, loss in validated if step % 6]
    assert [step for step, _ in mid] == [2, 4, 8, 10]
    assert [event for event in events if event[0] == "mid_val"] == \
        [("mid_val", step, loss, loss) for step, loss in mid]
    for step, _ in mid:  # right after that batch's end
        assert events[events.index(("batch_end", step)) + 1][:2] == ("mid_val", step)
    history = trainer.callbacks.find(hookline.History)[0].history
    assert history["val_loss"] == [loss for step, loss in validated if step % 6 == 0]


def test_val_check_interval_validates_only_in_epochs_that_validate() -> None:
    trainer = make(check_val_every_n_epoch=2, val_check_interval=2)  # 6 batches per epoch
    seen = validations(trainer)
    trainer.fit()
    assert seen == [(epoch, b) for epoch in (1, 3) for b in (1, 3, 5)]


def test_val_check_interval_beyond_the_epoch_is_refused_before_training() -> None:
    recorder = RecordingCallback(events=("on_train_batch_end",))
    trainer = make([recorder], val_check_interval=10)  # 6 batches per epoch
    with pytest.raises(ValueError, match=r"val_check_interval \(10\) must be less than or "
                                         r"equal to .* per epoch \(6\).* at most 6"):
        trainer.fit()
    assert recorder.events == []
    fitting = make(val_check_interval=6, epochs=1)  # the epoch's length: at its end only
    seen = validations(fitting)
    fitting.fit()
    assert seen == [(0, 5)]


def test_min_epochs_holds_an_early_stop_and_max_steps_ends_training() -> None:
    stopper = EarlyStopping(monitor="val_loss", patience=0)
    trainer = make([ScriptedMetrics({"val_loss": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]}), stopper],
                   epochs=6, min_epochs=4)
    trainer.fit()
    assert trainer.epoch == 3  # asked to stop after epoch 2 (index 1), held until 4 epochs
    trainer = make(epochs=10, max_steps=9)
    trainer.fit()
    assert trainer.step == 9 and trainer.epoch == 1
    assert trainer.stop_reason == "max_steps=9 reached"
    always = hookline.LambdaCallback(on_train_batch_end=lambda t: t.request_stop("asked"))
    held = make([always], epochs=3, min_steps=8)
    held.fit()
    assert held.step == 8


def stop_at(epoch: int, batch_i: int) -> hookline.LambdaCallback:
    """A callback asking for a stop after that training batch."""
    def ask(trainer: hookline.Trainer) -> None:
        if (trainer.epoch, trainer.batch_i) == (epoch, batch_i):
            trainer.request_stop("asked")
    return hookline.LambdaCallback(on_train_batch_end=ask)


def test_min_epochs_counts_complete_epochs_and_max_steps_wins() -> None:
    recorder = RecordingCallback(capture=("epoch",), events=("on_train_batch_end",))
    # a stop asked in the 2nd epoch with min_epochs=2: that epoch is not complete yet
    trainer = make([stop_at(1, 0), recorder], epochs=5, min_epochs=2)
    trainer.fit()
    assert [seen["epoch"] for _, seen in recorder.records] == [0] * 6 + [1] * 6
    assert trainer.step == 12 and trainer.stop_reason == "asked"
    # max_steps ends training before min_epochs or min_steps, as in Lightning
    for held in ({"min_epochs": 3}, {"min_steps": 20}):
        trainer = make(epochs=10, max_steps=8, **held)
        trainer.fit()
        assert (trainer.step, trainer.epoch) == (8, 1)
        assert trainer.stop_reason == "max_steps=8 reached"
    trainer = make(epochs=10, max_steps=12, min_epochs=3)  # reached at an epoch's end
    trainer.fit()
    assert (trainer.step, trainer.epoch) == (12, 1)


def test_sanity_validation_runs_first_and_changes_nothing() -> None:
    recorder = RecordingCallback(capture=("batch_i",),
                                 events=("on_val_batch_end", "on_train_start"))
    seen = []
    trainer = make([recorder], num_sanity_val_steps=2, epochs=1)
    trainer.add_callback("on_val_start", lambda v: seen.append(v.trainer.sanity_checking))
    trainer.fit()
    assert recorder.events[:3] == ["on_val_batch_end", "on_val_batch_end", "on_train_start"]
    assert seen == [True, False]
    plain = make(epochs=1)
    plain.fit()
    assert all(torch.equal(a, b) for a, b in zip(trainer.model.state_dict().values(),
                                                 plain.model.state_dict().values()))


def test_the_sanity_pass_draws_nothing_from_the_runs_generators() -> None:
    """A shuffled val_data (sharing its generator with train_data) and steps drawing from
    torch, random and numpy: the run with a sanity pass trains as the one without."""
    import random

    import numpy as np
    from torch.utils.data import DataLoader, TensorDataset

    def noise() -> float:
        return 1 + 0.01 * (float(torch.rand(())) + random.random() + float(np.random.rand()))

    def run(sanity: int) -> hookline.Trainer:
        shared = torch.Generator().manual_seed(1)
        train = DataLoader(TensorDataset(*tiny_data(48)), batch_size=8, shuffle=True,
                           generator=shared)
        val = DataLoader(TensorDataset(*tiny_data(16, seed=1)), batch_size=4, shuffle=True,
                         generator=shared)
        trainer = make(train_data=train, val_data=val, epochs=2, num_sanity_val_steps=sanity,
                       limit_val_batches=2,
                       training_step=lambda t, batch: t.training_step(batch) * noise(),
                       validation_step=lambda t, batch: t.validation_step(batch) * noise())
        trainer.fit()
        return trainer

    plain, checked = run(0), run(2)
    assert all(torch.equal(a, b) for a, b in zip(plain.model.state_dict().values(),
                                                 checked.model.state_dict().values()))
    assert checked.metrics == plain.metrics


def test_batch_limits_and_fast_dev_run(tmp_path: Path) -> None:
    recorder = RecordingCallback(events=("on_train_batch_end", "on_val_batch_end"))
    trainer = make([recorder], epochs=1, limit_train_batches=0.5, limit_val_batches=1)
    trainer.fit()
    assert recorder.events.count("on_train_batch_end") == 3
    assert recorder.events.count("on_val_batch_end") == 1
    assert len(trainer.predict(torch.randn(40, 8), limit_batches=2)) == 16
    quick = make(epochs=5, fast_dev_run=True, save_dir=tmp_path)
    quick.fit()
    assert quick.step == 1 and quick.epoch == 0
    assert not (tmp_path / "weights").exists()


def test_fast_dev_run_0_or_false_is_off(tmp_path: Path) -> None:
    for off in (0, False):
        trainer = make(epochs=2, fast_dev_run=off, save_dir=tmp_path / str(off))
        trainer.fit()
        assert trainer.step == 12  # 2 whole epochs of 6 batches, weights written
        assert (tmp_path / str(off) / "weights" / "last.pt").is_file()


def test_fast_dev_run_after_initial_epoch_trains_one_epoch() -> None:
    quick = make(epochs=5, initial_epoch=2, fast_dev_run=True)
    quick.fit()
    assert (quick.step, quick.epoch) == (1, 2)
    x, y = tiny_data(48)
    model = hookline.Model(tiny_model(), loss="cross_entropy", device="cpu")
    history = model.fit(x, y, epochs=5, initial_epoch=2, batch_size=8, verbose=0,
                        fast_dev_run=2)
    assert history.epoch == [2] and len(history.history["loss"]) == 1


def test_a_fraction_of_val_data_without_a_length_is_refused_before_training() -> None:
    x, y = tiny_data(16, seed=1)

    class Unsized:
        def __iter__(self) -> Any:
            return iter([(x[:8], y[:8]), (x[8:], y[8:])])

    recorder = RecordingCallback(events=("on_train_batch_end", "on_val_start"))
    trainer = make([recorder], val_data=Unsized(), limit_val_batches=0.5,
                   num_sanity_val_steps=1)
    with pytest.raises(ValueError, match=r"limit_val_batches=0.5 is a fraction .* no length"):
        trainer.fit()
    assert recorder.events == []  # neither a training batch nor the sanity pass ran


@pytest.mark.parametrize(("options", "message"), [
    ({"check_val_every_n_epoch": 0}, "check_val_every_n_epoch must be an integer >= 1"),
    ({"check_val_every_n_epoch": [0, 2]}, "names the 1-based epochs"),
    ({"val_check_interval": 1.5}, "val_check_interval must be a number of batches"),
    ({"min_epochs": -1}, "min_epochs must be an integer >= 0"),
    ({"max_steps": 0}, "max_steps must be an integer >= 1"),
    ({"limit_val_batches": 0}, "limit_val_batches must be a number of batches"),
    ({"fast_dev_run": -2}, "fast_dev_run must be an integer >= 0"),
    ({"fast_dev_run": 1.5}, "fast_dev_run must be an integer >= 0"),
])
def test_bad_options_name_the_option(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(**options)


def test_the_schedule_is_exact_under_resume(tmp_path: Path) -> None:
    options = dict(epochs=4, check_val_every_n_epoch=2, val_check_interval=3, min_epochs=3,
                   max_steps=20, limit_train_batches=5)
    expected = make(**options)
    expected.fit()
    first = make([OnExceptionCheckpoint(tmp_path, rng="all"), crash_at("on_train_batch_end", 8)],
                 **options)
    with pytest.raises(Crash):
        first.fit()
    resumed = make(resume=tmp_path / "on_exception.ckpt", **options)
    resumed.fit()
    assert resumed.step == expected.step == 20
    assert all(torch.equal(a, b) for a, b in zip(resumed.model.state_dict().values(),
                                                 expected.model.state_dict().values()))
    assert resumed.metrics == expected.metrics


@pytest.mark.parametrize(("options", "crash"), [
    ({"min_epochs": 2, "callbacks": [stop_at(1, 0)]}, 9),  # a held stop: the epoch trains on
    ({"min_epochs": 3, "max_steps": 8}, 8),  # max_steps mid-epoch: the epoch ends there
])
def test_a_stop_asked_mid_epoch_resumes_as_the_uninterrupted_run(
        tmp_path: Path, options: dict[str, Any], crash: int) -> None:
    options = {"epochs": 5, **options}
    callbacks = options.pop("callbacks", [])
    expected = make(callbacks, **options)
    expected.fit()
    first = make([*callbacks, OnExceptionCheckpoint(tmp_path, rng="all"),
                  crash_at("on_train_batch_end", crash)], **options)
    with pytest.raises(Crash):
        first.fit()
    assert first.stop  # the checkpoint records the stop asked
    resumed = make(callbacks, resume=tmp_path / "on_exception.ckpt", **options)
    resumed.fit()
    assert resumed.step == expected.step
    assert all(torch.equal(a, b) for a, b in zip(resumed.model.state_dict().values(),
                                                 expected.model.state_dict().values()))


def test_the_csv_log_has_validation_columns_when_the_first_epoch_does_not_validate(
        tmp_path: Path) -> None:
    import csv

    from hookline.callbacks import CSVLogger
    make([CSVLogger(tmp_path / "log.csv")], check_val_every_n_epoch=2, metrics=["accuracy"],
         train_metrics=True).fit()
    with open(tmp_path / "log.csv") as file:
        rows = list(csv.DictReader(file))
    assert [bool(row["val_loss"]) for row in rows] == [False, True, False, True]
    assert [bool(row["val_accuracy"]) for row in rows] == [False, True, False, True]


def test_the_csv_log_has_validation_only_metrics_when_the_first_epoch_does_not_validate(
        tmp_path: Path) -> None:
    """The default metrics ("auto": accuracy, computed by validation only) and a weighted
    metric have columns from the first row, though training logs neither."""
    import csv

    from hookline.callbacks import CSVLogger, History
    trainer = make([CSVLogger(tmp_path / "log.csv")], check_val_every_n_epoch=2,
                   weighted_metrics=["accuracy"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "first appeared ... not logged" warning
        trainer.fit()
    with open(tmp_path / "log.csv") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["epoch", "loss", "val_loss", "val_accuracy", "val_weighted_accuracy"]
    history = trainer.callbacks.find(History)[0].history
    for column, name in enumerate(rows[0][2:], start=2):
        assert [row[column] for row in rows[1:]][::2] == ["", ""]
        assert [float(row[column]) for row in rows[2::2]] == history[name][1::2]
