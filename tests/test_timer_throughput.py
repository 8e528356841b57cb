"""Timer (time budget, graceful stop, resume) and ThroughputMonitor (samples/s, steps/s)."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest

from hookline import Trainer
from hookline.callbacks import History, LambdaCallback, ThroughputMonitor, Timer
from hookline.callbacks import throughput_monitor as throughput_module
from hookline.callbacks import timer as timer_module
from hookline.testing import tiny_data, tiny_model


class Clock:
    """A fake clock that a callback advances by ``tick`` seconds after every batch."""

    def __init__(self, tick: float) -> None:
        self.now, self.tick = 1000.0, tick

    def __call__(self) -> float:
        return self.now

    def ticker(self) -> LambdaCallback:
        def advance(trainer):
            self.now += self.tick
        callback = LambdaCallback(on_train_batch_end=advance)
        callback.order = -100  # before the callbacks that read the clock
        return callback


def _fit(callbacks, *, epochs=10, samples=64, accumulate=1, initial_epoch=0):
    trainer = Trainer(tiny_model(), loss="cross_entropy", train_data=tiny_data(samples),
                      epochs=epochs, batch_size=16, seed=0, verbose=0, accumulate=accumulate,
                      initial_epoch=initial_epoch, callbacks=callbacks)
    trainer.fit()
    return trainer


@pytest.mark.parametrize(("duration", "seconds"), [
    ("00:00:00:05", 5.0),
    ("00:01:00:00", 3600.0),
    ("01:02:03:04", 93784.0),
    (timedelta(minutes=2), 120.0),
    (90, 90.0),
    (0.5, 0.5),
])
def test_durations_parse_to_seconds(duration, seconds):
    assert timer_module.parse_duration(duration) == seconds
    assert Timer(duration).duration == seconds


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"duration": "01:00"}, ValueError, "DD:HH:MM:SS"),
    ({"duration": "aa:bb:cc:dd"}, ValueError, "DD:HH:MM:SS"),
    ({"duration": "00:00:-1:00"}, ValueError, "DD:HH:MM:SS"),
    ({"duration": 0}, ValueError, "positive"),
    ({"duration": timedelta(seconds=-3)}, ValueError, "positive"),
    ({"duration": True}, TypeError, "timedelta or seconds"),
    ({"duration": [5]}, TypeError, "timedelta or seconds"),
    ({"duration": 5, "interval": "batch"}, ValueError, "'step' or 'epoch'"),
])
def test_bad_options_fail_at_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        Timer(**kwargs)


def test_step_interval_stops_after_the_batch_that_spends_the_budget(monkeypatch):
    clock = Clock(tick=1.0)
    monkeypatch.setattr(timer_module, "_now", clock)
    timer = Timer(5, interval="step", verbose=False)
    trainer = _fit([clock.ticker(), timer])  # 4 batches an epoch, one second each
    assert trainer.step == 5  # the 5th batch reached 5 s; the run stopped right after it
    assert trainer.epoch == 1 and "Timer" in trainer.stop_reason
    history = trainer.callbacks.find(History)[0]
    assert history.epoch == [0, 1]  # the cut epoch still ended normally
    assert timer.elapsed == 5.0 and timer.remaining == 0.0


def test_epoch_interval_lets_the_epoch_finish(monkeypatch):
    clock = Clock(tick=1.0)
    monkeypatch.setattr(timer_module, "_now", clock)
    timer = Timer("00:00:00:05", interval="epoch", verbose=False)
    trainer = _fit([clock.ticker(), timer])
    assert trainer.step == 8 and trainer.epoch == 1  # all of epoch 1, then stop
    assert timer.hookline_handlers().keys() == {"on_train_start", "on_fit_epoch_end",
                                                "on_train_end"}  # no per-batch hook


def test_elapsed_time_survives_a_resume(monkeypatch):
    clock = Clock(tick=1.0)
    monkeypatch.setattr(timer_module, "_now", clock)
    first = Timer(None)  # measures only
    _fit([clock.ticker(), first], epochs=1)
    state = first.state_dict()
    assert state == {"elapsed": 4.0}
    resumed = Timer(6, verbose=False)
    resumed.load_state_dict(state)
    trainer = _fit([clock.ticker(), resumed], initial_epoch=1)
    assert trainer.step == 2  # 4 s before + 2 s now = the 6 s budget
    assert resumed.elapsed == 6.0


def test_a_reused_timer_starts_from_zero_without_a_resume(monkeypatch):
    clock = Clock(tick=1.0)
    monkeypatch.setattr(timer_module, "_now", clock)
    timer = Timer(6, verbose=False)
    _fit([clock.ticker(), timer])
    trainer = _fit([clock.ticker(), timer])
    assert trainer.step == 6


def test_throughput_counts_samples_and_optimizer_steps_per_second(monkeypatch):
    clock = Clock(tick=0.5)
    monkeypatch.setattr(throughput_module, "_now", clock)
    trainer = _fit([clock.ticker(), ThroughputMonitor()], epochs=2, samples=70,
                   accumulate=2)
    history = trainer.callbacks.find(History)[0].history
    # 70 samples in 5 batches (the last has 6) take 2.5 s; 3 optimizer steps (2 + 2 + 1)
    assert history["samples_per_sec"] == [pytest.approx(28.0)] * 2
    assert history["steps_per_sec"] == [pytest.approx(1.2)] * 2


def test_throughput_prefix_and_custom_batch_size(monkeypatch):
    clock = Clock(tick=1.0)
    monkeypatch.setattr(throughput_module, "_now", clock)
    monitor = ThroughputMonitor(batch_size_fn=lambda batch: 100, prefix="train/")
    trainer = _fit([clock.ticker(), monitor], epochs=1)
    assert trainer.metrics["train/samples_per_sec"] == pytest.approx(100.0)
    assert trainer.metrics["train/steps_per_sec"] == pytest.approx(1.0)


def test_throughput_reads_shapes_never_values():
    class Batch:
        shape = (16, 8)

        def __getattr__(self, name):
            raise AssertionError(f"read {name} of the batch")

    class NoValues:
        step, batch = 0, (Batch(), Batch())

        @property
        def loss(self):
            raise AssertionError("read the loss (a device sync)")

    monitor = ThroughputMonitor()
    monitor.on_train_epoch_start(NoValues())
    monitor.on_train_batch_end(NoValues())
    assert monitor._samples == 16
    assert ThroughputMonitor(batch_size_fn=None).batch_size_fn(
        {"x": SimpleNamespace(shape=(7, 2))}) == 7


def test_throughput_bad_options():
    with pytest.raises(TypeError, match="batch_size_fn"):
        ThroughputMonitor(batch_size_fn=3)
    with pytest.raises(TypeError, match="prefix"):
        ThroughputMonitor(prefix=None)


def test_throughput_adds_nothing_for_an_epoch_resumed_after_its_last_batch():
    engine = SimpleNamespace(step=12, metrics={"loss": 0.5})
    monitor = ThroughputMonitor()
    monitor.on_train_epoch_start(engine)
    monitor.on_train_epoch_end(engine)  # no batch ran in between
    assert engine.metrics == {"loss": 0.5}
