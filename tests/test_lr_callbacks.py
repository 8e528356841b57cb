"""Learning-rate callbacks: the rate per epoch (and per step) for each schedule and option."""

from __future__ import annotations

import math
import re
import warnings
from types import SimpleNamespace

import pytest
import torch

import hookline
from hookline import LambdaCallback
from hookline.callbacks import (
    BackupAndRestore,
    LearningRateMonitor,
    LearningRateScheduler,
    LRSchedulerCallback,
    OnExceptionCheckpoint,
    ReduceLROnPlateau,
    TorchScheduler,
    one_cycle,
    warmup_cosine,
)
from hookline.callbacks.lr_scheduler import WarmupCosine
from hookline.checkpoint import CheckpointMismatchError, load_weights
from hookline.testing import Crash, ScriptedMetrics, crash_at, tiny_data, tiny_model

NAN = math.nan



class Rates(LambdaCallback):
    """The first group's lr in use during each epoch, and after each optimizer step."""

    order = 200  # after every built-in, so reductions at on_fit_epoch_end are visible

    def __init__(self):
        self.during, self.after_epoch, self.steps = [], [], []
        super().__init__(on_train_epoch_end=self.epoch_rate, on_fit_epoch_end=self.end_rate,
                         optimizer_step=self.step_rate)

    def epoch_rate(self, trainer):
        self.during.append(trainer.optimizer.param_groups[0]["lr"])

    def end_rate(self, trainer):
        self.after_epoch.append(trainer.optimizer.param_groups[0]["lr"])

    def step_rate(self, trainer):
        self.steps.append(trainer.optimizer.param_groups[0]["lr"])


def fit(callbacks, epochs, *, samples=16, lr=1e-3, optimizer="sgd", **options):
    x, y = tiny_data(samples=samples)
    trainer = hookline.Trainer(tiny_model(), loss="cross_entropy", train_data=(x, y),
                               batch_size=16, epochs=epochs, callbacks=callbacks, lr=lr,
                               optimizer=optimizer, default_callbacks=False, verbose=0,
                               device="cpu", seed=0, **options)
    trainer.fit()
    return trainer


def close(actual, expected):
    return len(actual) == len(expected) and all(
        math.isclose(a, e, rel_tol=1e-9, abs_tol=1e-15) for a, e in zip(actual, expected))


# --- LearningRateScheduler (Keras) --------------------------------------------------------

SCHEDULES = {
    "two arguments: halve each epoch": (lambda epoch, lr: lr * 0.5 if epoch else lr,
                                        [1e-3, 5e-4, 2.5e-4, 1.25e-4]),
    "one argument": (lambda epoch: 0.1 / (epoch + 1), [0.1, 0.05, 0.1 / 3, 0.025]),
    "step decay": (lambda epoch, lr: 1e-2 if epoch < 2 else 1e-3, [1e-2, 1e-2, 1e-3, 1e-3]),
}


@pytest.mark.parametrize("schedule, expected", SCHEDULES.values(), ids=SCHEDULES.keys())
def test_learning_rate_scheduler_table(schedule, expected):
    rates = Rates()
    fit([LearningRateScheduler(schedule), rates], epochs=4)
    assert close(rates.during, expected)


def test_learning_rate_scheduler_uses_the_absolute_epoch_and_each_group():
    seen = []

    def schedule(epoch, lr):
        seen.append((epoch, lr))
        return lr / 10

    model = tiny_model()
    optimizer = torch.optim.SGD([{"params": model[0].parameters(), "lr": 1.0},
                                 {"params": model[2].parameters(), "lr": 0.5}])
    x, y = tiny_data(samples=16)
    hookline.Trainer(model, optimizer=optimizer, loss="cross_entropy", train_data=(x, y),
                     epochs=4, initial_epoch=2, callbacks=[LearningRateScheduler(schedule)],
                     default_callbacks=False, verbose=0, device="cpu").fit()
    assert [epoch for epoch, _ in seen] == [2, 2, 3, 3]
    assert close([lr for _, lr in seen], [1.0, 0.5, 0.1, 0.05])
    assert close([g["lr"] for g in optimizer.param_groups], [0.01, 0.005])


@pytest.mark.parametrize("returned", [None, NAN, -1.0, "0.1"])
def test_learning_rate_scheduler_rejects_bad_rates(returned):
    with pytest.raises(ValueError, match=r"schedule\(0, 0.001\) returned .*finite number >= 0"):
        fit([LearningRateScheduler(lambda epoch, lr: returned)], epochs=1)


def test_learning_rate_scheduler_needs_a_callable():
    with pytest.raises(TypeError, match=r"schedule=0.1.*must be callable"):
        LearningRateScheduler(0.1)


# --- ReduceLROnPlateau ----------------------------------------------------------------------

FLAT = [1.0] * 8
PLATEAU_CASES = {
    "patience 2 on a plateau": (dict(factor=0.5, patience=2), FLAT,
                                [8, 8, 4, 4, 2, 2, 1, 1]),
    "cooldown skips epochs after a reduction": (dict(factor=0.5, patience=2, cooldown=1), FLAT,
                                                [8, 8, 4, 4, 4, 2, 2, 2]),
    "patience 0 reduces at every non-improvement": (dict(factor=0.5, patience=0), FLAT,
                                                    [8, 4, 2, 1, 0.5, 0.25, 0.125, 0.0625]),
    "min_lr is a floor": (dict(factor=0.1, patience=1, min_lr=0.05), FLAT,
                          [8, 0.8, 0.08, 0.05, 0.05, 0.05, 0.05, 0.05]),
    "improvements keep the rate": (dict(factor=0.5, patience=1), [8, 7, 6, 5, 4, 3, 2, 1],
                                   [8] * 8),
    "min_delta: small gains are a plateau": (dict(factor=0.5, patience=2, min_delta=0.1),
                                             [1, 0.95, 0.9, 0.85, 0.7, 0.65, 0.6, 0.55],
                                             [8, 8, 4, 4, 4, 4, 2, 2]),
    "mode auto: accuracy must rise": (dict(monitor="val_accuracy", factor=0.5, patience=1),
                                      [0.1, 0.2, 0.15, 0.3, 0.3, 0.4, 0.35, 0.2],
                                      [8, 8, 4, 4, 2, 2, 1, 0.5]),
    "NaN counts as no improvement": (dict(factor=0.5, patience=1), [1, NAN, 0.5, NAN],
                                     [8, 4, 4, 2]),
}


@pytest.mark.parametrize("options, values, expected", PLATEAU_CASES.values(),
                         ids=PLATEAU_CASES.keys())
def test_reduce_lr_on_plateau_table(options, values, expected):
    rates = Rates()
    plateau = ReduceLROnPlateau(**options)
    fit([ScriptedMetrics({options.get("monitor", "val_loss"): values}), plateau, rates],
        epochs=len(values), lr=8.0)
    assert close(rates.after_epoch, expected), rates.after_epoch
    assert close(rates.during, [8.0] + expected[:-1])  # a reduction applies from the next epoch
    assert plateau.num_reductions == len({*expected}) - 1


def test_reduce_lr_on_plateau_logs_the_rate_each_epoch_trained_with(tmp_path):
    """As Keras 3 puts ``logs["learning_rate"]``: the epoch's rate, before its reduction, in
    History and in CSVLogger's file from the first row."""
    import csv

    from hookline.callbacks import CSVLogger
    history, rates = hookline.History(), Rates()
    fit([ScriptedMetrics({"val_loss": FLAT[:4]}), ReduceLROnPlateau(factor=0.5, patience=1),
         history, CSVLogger(tmp_path / "log.csv"), rates], epochs=4, lr=8.0)
    assert history.history["learning_rate"] == rates.during == [8.0, 8.0, 4.0, 2.0]
    assert rates.after_epoch == [8.0, 4.0, 2.0, 1.0]  # reduced after epochs 1, 2, 3
    with open(tmp_path / "log.csv") as file:
        rows = list(csv.DictReader(file))
    assert [float(row["learning_rate"]) for row in rows] == [8.0, 8.0, 4.0, 2.0]


def test_reduce_lr_on_plateau_min_lr_per_group():
    model = tiny_model()
    optimizer = torch.optim.SGD([{"params": model[0].parameters(), "lr": 1.0},
                                 {"params": model[2].parameters(), "lr": 1.0}])
    x, y = tiny_data(samples=16)
    plateau = ReduceLROnPlateau(factor=0.5, patience=0, min_lr=[0.5, 0.125])
    hookline.Trainer(model, optimizer=optimizer, loss="cross_entropy", train_data=(x, y),
                     epochs=5, callbacks=[ScriptedMetrics({"val_loss": [1.0] * 5}), plateau],
                     default_callbacks=False, verbose=0, device="cpu").fit()
    assert [g["lr"] for g in optimizer.param_groups] == [0.5, 0.125]


def test_reduce_lr_on_plateau_state_resumes_counters():
    plateau = ReduceLROnPlateau(factor=0.5, patience=3, cooldown=2)
    plateau.load_state_dict({"best": 0.5, "wait": 2, "cooldown_counter": 0,
                             "num_reductions": 1})
    rates = Rates()
    fit([ScriptedMetrics({"val_loss": [0.6, 0.6]}), plateau, rates], epochs=2, lr=1.0)
    assert rates.after_epoch == [0.5, 0.5]  # the loaded wait=2 reached 3 at the first epoch
    assert plateau.state_dict() == {"best": 0.5, "wait": 0, "cooldown_counter": 1,
                                    "num_reductions": 2}
    plateau.on_train_start(SimpleNamespace(optimizer=torch.optim.SGD(
        tiny_model().parameters(), lr=1.0)))
    assert plateau.state_dict() == {"best": math.inf, "wait": 0, "cooldown_counter": 0,
                                    "num_reductions": 0}


@pytest.mark.parametrize("options, message", [
    (dict(factor=1.0), r"factor=1.0.*between 0 and 1"),
    (dict(factor=1.5), r"factor=1.5.*between 0 and 1"),
    (dict(factor=0), r"factor=0.*between 0 and 1"),
    (dict(patience=-1), r"patience=-1.*integer >= 0"),
    (dict(cooldown=-1), r"cooldown=-1.*integer >= 0"),
    (dict(min_lr=-1e-3), r"min_lr=-0.001.*>= 0"),
    (dict(mode="up"), r"mode='up'.*one of"),
    (dict(min_delta=-1), r"min_delta=-1"),
    (dict(monitor="val_thing"), r"cannot tell whether 'val_thing'"),
])
def test_reduce_lr_on_plateau_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        ReduceLROnPlateau(**options)


def test_reduce_lr_on_plateau_min_lr_list_must_match_groups():
    with pytest.raises(ValueError, match=r"gives 2 values but the optimizer has 1 param group"):
        fit([ScriptedMetrics({"val_loss": [1.0]}), ReduceLROnPlateau(min_lr=[0.1, 0.2])],
            epochs=1)


# --- torch schedulers -------------------------------------------------------------------------

def test_torch_scheduler_epoch_interval():
    rates = Rates()
    sched = TorchScheduler(lambda opt: torch.optim.lr_scheduler.StepLR(opt, 2, gamma=0.1))
    fit([sched, rates], epochs=5, lr=1.0)
    assert close(rates.during, [1.0, 1.0, 0.1, 0.1, 0.01])


def test_torch_scheduler_step_interval_with_frequency():
    rates = Rates()
    sched = LRSchedulerCallback(
        lambda opt: torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5),
        interval="step", frequency=2)
    fit([sched, rates], epochs=2, samples=48, lr=1.0)  # 3 steps per epoch
    assert close(rates.steps, [1.0, 1.0, 0.5, 0.5, 0.25, 0.25])


def test_torch_plateau_scheduler_gets_the_monitored_metric():
    rates = Rates()
    sched = LRSchedulerCallback(
        lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0),
        monitor="val_accuracy")
    fit([ScriptedMetrics({"val_accuracy": [0.9, 0.8, 0.7]}), sched, rates], epochs=3, lr=1.0)
    # torch's plateau defaults to mode="min": falling accuracy is an improvement to it
    assert rates.after_epoch == [1.0, 1.0, 1.0]
    rates = Rates()
    sched = LRSchedulerCallback(
        lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0))
    # val_loss by default
    fit([ScriptedMetrics({"val_loss": [0.9, 0.95, 0.97]}), sched, rates], epochs=3, lr=1.0)
    assert rates.after_epoch == [1.0, 0.5, 0.25]


def test_torch_plateau_needs_epoch_interval():
    optimizer = torch.optim.SGD(tiny_model().parameters(), lr=1.0)
    with pytest.raises(ValueError, match="interval='step'.*cannot drive ReduceLROnPlateau"):
        LRSchedulerCallback(torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer),
                            interval="step")


def test_scheduler_on_another_optimizer_is_a_clear_error():
    other = torch.optim.SGD(tiny_model().parameters(), lr=1.0)
    with pytest.raises(ValueError, match="built on a different optimizer"):
        fit([LRSchedulerCallback(torch.optim.lr_scheduler.StepLR(other, 1))], epochs=1)


def test_scheduler_instance_on_the_trainers_optimizer():
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = LRSchedulerCallback(torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5))
    x, y = tiny_data(samples=16)
    hookline.Trainer(model, optimizer=optimizer, loss="cross_entropy", train_data=(x, y),
                     epochs=3, callbacks=[sched], default_callbacks=False, verbose=0,
                     device="cpu").fit()
    assert optimizer.param_groups[0]["lr"] == 0.125


@pytest.mark.parametrize("options, message", [
    (dict(interval="batch"), r"interval='batch'.*one of 'step', 'epoch'"),
    (dict(frequency=0), r"frequency=0.*integer >= 1"),
])
def test_torch_scheduler_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        LRSchedulerCallback(lambda opt: None, **options)


def test_torch_scheduler_rejects_non_schedulers():
    with pytest.raises(TypeError, match="torch.optim.lr_scheduler instance or a factory"):
        LRSchedulerCallback(3)
    with pytest.raises(TypeError, match="factory returned dict"):
        fit([LRSchedulerCallback(lambda opt: {})], epochs=1)


def test_torch_scheduler_state_resumes_the_schedule():
    def factory(opt):
        return torch.optim.lr_scheduler.StepLR(opt, 2, gamma=0.1)

    first = TorchScheduler(factory)
    fit([first], epochs=3, lr=1.0)
    state = first.state_dict()
    assert state["count"] == 3 and state["scheduler"]["last_epoch"] == 3

    resumed = TorchScheduler(factory)
    resumed.load_state_dict(state)
    rates = Rates()
    fit([resumed, rates], epochs=5, initial_epoch=3, lr=1.0)  # epochs 3 and 4
    # a resume restores the optimizer's lr too; here only the scheduler's counter continues
    assert resumed.scheduler.last_epoch == 5 and resumed.count == 5
    assert close(rates.after_epoch, [0.1, 0.1])


# --- ready schedules -------------------------------------------------------------------------

def test_warmup_cosine_factor():
    factor = WarmupCosine(warmup=4, total=12, min_lr_factor=0.1)
    assert close([factor(t) for t in range(4)], [0.25, 0.5, 0.75, 1.0])
    assert factor(4) == 1.0 and math.isclose(factor(8), 0.55)
    assert math.isclose(factor(12), 0.1) and math.isclose(factor(50), 0.1)


def test_warmup_cosine_spans_the_run_by_default():
    rates = Rates()
    fit([warmup_cosine(warmup=2), rates], epochs=4, samples=48, lr=1.0)  # 12 steps
    expected = [WarmupCosine(2, 12)(t) for t in range(12)]
    assert close(rates.steps, expected)
    assert rates.steps[1] == 1.0 and rates.steps[-1] < 0.03


def test_warmup_cosine_per_epoch_interval():
    rates = Rates()
    fit([warmup_cosine(warmup=1, total=4, interval="epoch"), rates], epochs=4, lr=1.0)
    assert close(rates.during, [1.0, 1.0, 0.5 + 0.5 * math.cos(math.pi / 3),
                                0.5 + 0.5 * math.cos(2 * math.pi / 3)])


def test_one_cycle_spans_the_run():
    rates = Rates()
    fit([one_cycle(max_lr=1.0, pct_start=0.25), rates], epochs=4, samples=32, lr=0.1)
    steps = rates.steps  # 8 steps: up for 2, down for 6
    assert len(steps) == 8 and math.isclose(steps[0], 1.0 / 25)
    assert max(steps) == pytest.approx(1.0, rel=1e-6) and steps.index(max(steps)) == 1
    assert steps[-1] == pytest.approx(1.0 / 25 / 1e4, rel=1e-6)


def test_one_cycle_ends_where_max_steps_ends_the_run():
    # 100 epochs of 2 steps, stopped by max_steps=8: the cycle spans the 8 steps that run,
    # as in a 4-epoch run (before: it was built for 200 steps and ended in its warm-up)
    rates = Rates()
    trainer = fit([one_cycle(max_lr=1.0, pct_start=0.25), rates], epochs=100, samples=32,
                  lr=0.1, max_steps=8)
    steps = rates.steps
    assert trainer.step == 8 and len(steps) == 8 and steps.index(max(steps)) == 1
    assert steps[-1] == pytest.approx(1.0 / 25 / 1e4, rel=1e-6)


def test_a_schedule_counts_max_steps_when_the_data_has_no_length():
    totals = []

    def factory(optimizer, total):
        totals.append(total)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    x, y = tiny_data(samples=32)
    batches = (pair for pair in [(x[:16], y[:16]), (x[16:], y[16:])])  # no len()
    trainer = hookline.Trainer(tiny_model(), loss="cross_entropy", train_data=batches,
                               epochs=1, max_steps=2, default_callbacks=False, verbose=0,
                               callbacks=[LRSchedulerCallback(factory, interval="step")])
    trainer.fit()
    assert totals == [2]
    epoch_totals = []
    by_epoch = LRSchedulerCallback(lambda opt, total: epoch_totals.append(total) or
                                   torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0))
    fit([by_epoch], epochs=50, samples=32, max_steps=5)  # 2 steps an epoch: 3 epochs begin
    assert epoch_totals == [3]


def test_one_cycle_defaults_to_the_current_rate_and_rebuilds_per_fit():
    cycle = one_cycle()
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    x, y = tiny_data(samples=32)
    for _ in range(2):  # the second fit starts where the first cycle ended, at a tiny rate
        rates = Rates()
        hookline.Trainer(model, optimizer=optimizer, loss="cross_entropy", train_data=(x, y),
                         batch_size=16, epochs=5, callbacks=[cycle, rates],
                         default_callbacks=False, verbose=0, device="cpu").fit()
        assert len(rates.steps) == 10 and max(rates.steps) == pytest.approx(0.5)


@pytest.mark.parametrize("call, message", [
    (lambda: warmup_cosine(warmup=-1), r"warmup=-1"),
    (lambda: warmup_cosine(warmup=5, total=5), r"total=5.*> warmup"),
    (lambda: warmup_cosine(warmup=1, min_lr_factor=2.0), r"min_lr_factor=2.0"),
    (lambda: one_cycle(pct_start=1.5), r"pct_start=1.5"),
])
def test_ready_schedules_bad_options(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- LearningRateMonitor ------------------------------------------------------------------------

def test_lr_monitor_records_every_group_and_momentum():
    model = tiny_model()
    optimizer = torch.optim.SGD([{"params": model[0].parameters(), "lr": 0.1, "momentum": 0.9},
                                 {"params": model[2].parameters(), "lr": 0.01}],
                                lr=0.5, weight_decay=1e-4)
    x, y = tiny_data(samples=16)
    history = hookline.History()
    hookline.Trainer(model, optimizer=optimizer, loss="cross_entropy", train_data=(x, y),
                     epochs=2, callbacks=[LearningRateMonitor(log_momentum=True,
                                                              log_weight_decay=True), history],
                     default_callbacks=False, verbose=0, device="cpu").fit()
    assert history.history["lr"] == [0.1, 0.1]
    assert history.history["lr-group1"] == [0.01, 0.01]
    assert history.history["momentum"] == [0.9, 0.9]
    assert history.history["momentum-group1"] == [0.0, 0.0]
    assert history.history["weight_decay"] == [1e-4, 1e-4]


def test_lr_monitor_reads_adam_betas_and_logs_the_rate_each_epoch_used():
    history = hookline.History()
    fit([LearningRateMonitor(log_momentum=True), history,
         LearningRateScheduler(lambda epoch, lr: 0.1 * 0.5 ** epoch)],
        epochs=3, optimizer="adam")
    assert history.history["momentum"] == [0.9, 0.9, 0.9]
    assert close(history.history["lr"], [0.1, 0.05, 0.025])
    assert "lr-group1" not in history.history


def test_lr_monitor_key_and_no_extras_by_default():
    history = hookline.History()
    fit([LearningRateMonitor(), history], epochs=1)
    assert set(history.history) == {"loss", "lr"}
    assert LearningRateMonitor().state_key != LearningRateMonitor(log_momentum=True).state_key


# --- a real resume applies each epoch's schedule once ---------------------------------------
def run_with(schedule, extra=(), **options):
    """Four epochs of three batches; the rate of every epoch and step is recorded."""
    rates = Rates()
    trainer = fit([ScriptedMetrics({"val_loss": [1.0] * 4}), schedule(), rates, *extra],
                  epochs=4, samples=48, lr=1.0, **options)
    return trainer, rates


RESUMED_SCHEDULES = {
    "LearningRateScheduler": lambda: LearningRateScheduler(lambda epoch, lr: lr * 0.5),
    "ReduceLROnPlateau": lambda: ReduceLROnPlateau(factor=0.5, patience=1),
    "LRSchedulerCallback per epoch": lambda: LRSchedulerCallback(
        lambda opt: torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.5)),
    "a factory that spans the run's total": lambda: LRSchedulerCallback(
        lambda opt, total: torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1 - t / total),
        interval="step"),
}


@pytest.mark.parametrize("schedule", RESUMED_SCHEDULES.values(), ids=RESUMED_SCHEDULES.keys())
def test_a_mid_epoch_resume_keeps_the_rate_of_every_epoch(tmp_path, schedule):
    expected, expected_rates = run_with(schedule)
    with pytest.raises(Crash):  # backups after batches 2 and 4; dies at batch 6
        run_with(schedule, [BackupAndRestore(tmp_path, save_freq=2),
                            crash_at("on_train_batch_end", 6)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every callback's state is claimed by the same key
        resumed, rates = run_with(schedule, [BackupAndRestore(tmp_path, save_freq=2)])
    assert resumed.resumed_from == tmp_path / "latest.ckpt"  # epoch 1, after 1 of 3 batches
    assert close(rates.during, expected_rates.during[1:])  # epochs 1, 2 and 3
    assert close(rates.steps, expected_rates.steps[4:])
    for name, tensor in expected.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], tensor), name


def test_a_resume_before_the_epochs_first_batch_does_not_schedule_it_twice(tmp_path):
    """resume_batch is 0 here; the checkpoint itself says the epoch was already scheduled."""
    def schedule():
        return LearningRateScheduler(lambda epoch, lr: lr * 0.5)
    expected, expected_rates = run_with(schedule)
    with pytest.raises(Crash):  # epoch 1's first batch, after its on_train_epoch_start
        run_with(schedule, [OnExceptionCheckpoint(tmp_path), crash_at("on_train_batch_start",
                                                                      4)])
    resumed, rates = run_with(schedule, resume=tmp_path / "on_exception.ckpt")
    assert close(rates.during, expected_rates.during[1:])
    assert close(rates.during, [0.25, 0.125, 0.0625])
    for name, tensor in expected.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], tensor), name


STEP_SCHEDULE = RESUMED_SCHEDULES["a factory that spans the run's total"]


def logged_rates():
    """(epoch, metrics["lr"]) at each epoch's end."""
    logged = []
    return logged, LambdaCallback(on_fit_epoch_end=lambda t: logged.append(
        (t.epoch, t.metrics["lr"])))


@pytest.mark.parametrize("crash", [
    "mid-epoch", "in on_train_epoch_end, after the monitor wrote"])
def test_lr_monitor_logs_the_rate_each_epoch_started_with_also_when_resumed(tmp_path, crash):
    """With a per-step schedule each epoch's lr is the rate of its first step, not the one its
    last step left for the next epoch; a resumed epoch logs the same value."""
    expected_log, expected = logged_rates()
    _, rates = run_with(STEP_SCHEDULE, [LearningRateMonitor(), expected])
    assert len(rates.steps) == 12 and len(set(rates.steps)) == 12  # a new rate every step
    assert expected_log == list(enumerate(rates.steps[::3]))
    if crash == "mid-epoch":  # backups after batches 2 and 4; resumed after 1 of epoch 1's 3
        saving, resume = BackupAndRestore(tmp_path, save_freq=2), {}
        crashing = crash_at("on_train_batch_end", 6)
    else:  # the checkpoint's phase is epoch_end: a resume replays on_train_epoch_end
        saving, resume = OnExceptionCheckpoint(tmp_path), {
            "resume": tmp_path / "on_exception.ckpt"}
        crashing = crash_at("on_train_epoch_end", 2)
    with pytest.raises(Crash):
        run_with(STEP_SCHEDULE, [LearningRateMonitor(), saving, crashing])
    log, recorder = logged_rates()
    monitor = [LearningRateMonitor(), recorder]
    resumed, _ = run_with(STEP_SCHEDULE, [*monitor, BackupAndRestore(tmp_path, save_freq=2)]
                          if not resume else monitor, **resume)
    assert resumed.start_epoch == 1
    assert log == expected_log[1:]


# --- extending a finished run (callbacks.md, "Extending a finished run") -------------------
def extendable(tmp_path, schedule, epochs, **options):
    """A trainer of 3 steps per epoch whose backup outlives it, as the recipe says."""
    x, y = tiny_data(samples=48)
    backup = BackupAndRestore(tmp_path, delete_checkpoint=False, auto_resume=False)
    return hookline.Trainer(tiny_model(), loss="cross_entropy", train_data=(x, y),
                            batch_size=16, epochs=epochs, callbacks=[schedule(), backup],
                            lr=0.1, optimizer="sgd", default_callbacks=False, verbose=0,
                            device="cpu", seed=0, **options)


RUN_LENGTH_SCHEDULES = {"one_cycle": (one_cycle, "one_cycle(max_lr=None, total=None)"),
                        "warmup_cosine": (lambda: warmup_cosine(warmup=2),
                                          "warmup_cosine(warmup=2, total=None)")}


@pytest.mark.parametrize(("schedule", "name"), RUN_LENGTH_SCHEDULES.values(),
                         ids=RUN_LENGTH_SCHEDULES.keys())
def test_extending_a_run_refuses_a_schedule_built_for_its_length(tmp_path, schedule, name):
    """Before: one_cycle failed at the first added step with torch's "Tried to step 7 times",
    warmup_cosine trained the added epochs at lr 0."""
    extendable(tmp_path, schedule, 2).fit()  # 6 steps
    saved = (tmp_path / "latest.ckpt").read_bytes()
    longer = extendable(tmp_path, schedule, 4, resume=True)
    untrained = {key: value.clone() for key, value in longer.model.state_dict().items()}
    with pytest.raises(CheckpointMismatchError, match=(
            rf"latest.ckpt: LRSchedulerCallback\({re.escape(name)}\) was built for 6 scheduler "
            rf"steps, .* this run \(epochs=4\) would step it 12 times: a schedule built for a "
            rf"total cannot be extended .*Nothing was loaded; resume with epochs=2 .*or start "
            rf"a new schedule from its weights")):
        longer.fit()
    after = longer.model.state_dict()
    assert [key for key in untrained if not torch.equal(untrained[key], after[key])] == []
    assert longer.step == 0 and (tmp_path / "latest.ckpt").read_bytes() == saved
    # the fix the error names: a new schedule over the added epochs, from the saved weights
    rates = Rates()
    fresh = extendable(tmp_path / "new", schedule, 2)
    fresh.callbacks.add(rates)
    fresh.model.load_state_dict(load_weights(tmp_path / "latest.ckpt")["model"])
    fresh.fit()
    assert len(rates.steps) == 6 and max(rates.steps) > 0.05


def test_a_schedule_with_its_own_total_is_extended(tmp_path):
    def schedule():
        return one_cycle(total=20)
    extendable(tmp_path, schedule, 2).fit()
    rates = Rates()
    longer = extendable(tmp_path, schedule, 4, resume=True)
    longer.callbacks.add(rates)
    longer.fit()
    assert longer.resumed and len(rates.steps) == 6 and longer.step == 12
