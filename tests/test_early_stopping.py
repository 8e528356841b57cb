"""EarlyStopping: stop epochs, restored weights, options, state, with real fits."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

import hookline
from hookline import LambdaCallback
from hookline.callbacks import EarlyStopping, ModelCheckpoint
from hookline.callbacks.monitor import infer_mode
from hookline.testing import RecordingCallback, ScriptedMetrics, tiny_data, tiny_model

NAN = math.nan



class WeightsPerEpoch(LambdaCallback):
    """Copies of the model's weights at each epoch's end (before anything restores them)."""

    order = -99

    def __init__(self):
        self.weights = {}
        super().__init__(on_fit_epoch_end=self.keep)

    def keep(self, trainer):
        self.weights[trainer.epoch] = {k: v.clone() for k, v in trainer.model.state_dict().items()}


def fit(callbacks, epochs, model=None, **options):
    x, y = tiny_data(samples=16)  # one batch per epoch: these tests are about epochs
    trainer = hookline.Trainer(model or tiny_model(), loss="cross_entropy", train_data=(x, y),
                               batch_size=16, epochs=epochs, callbacks=callbacks, lr=0.05,
                               default_callbacks=False, verbose=0, device="cpu", seed=0,
                               **options)
    trainer.fit()
    return trainer


def same_weights(model, weights):
    return all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())


# (options, monitored sequence, expected stopped_epoch (0 = ran to the end), best_epoch)
CASES = {
    "patience 0 stops at first non-improvement": (
        dict(patience=0), [3, 2, 2.5, 1], 2, 1),
    "patience counts consecutive epochs": (
        dict(patience=2), [5, 4, 4, 4, 3], 3, 1),
    "an improvement resets patience": (
        dict(patience=2), [5, 4, 4, 3.9, 4, 4, 1], 5, 3),
    "min_delta: small gains do not count": (
        dict(patience=2, min_delta=0.5), [5, 4.8, 4.7, 4.0], 2, 0),
    "min_delta: large gains count": (
        dict(patience=2, min_delta=0.5), [5, 4.4, 3.8, 3.2], 0, 3),
    "mode auto infers max for accuracy": (
        dict(monitor="val_accuracy", patience=2), [0.5, 0.6, 0.6, 0.59], 3, 1),
    "explicit mode for an unknown name": (
        dict(monitor="score", mode="max", patience=1), [1, 2, 1, 1], 2, 1),
    "baseline never beaten stops after patience epochs": (
        dict(patience=2, baseline=1.0), [3, 2.5, 2, 1.5, 1.2], 1, 1),
    "baseline beaten later resets patience": (
        dict(patience=3, baseline=2.1), [3, 2.5, 2.0, 2.0, 2.0, 2.0], 5, 2),
    "start_from_epoch ignores warm-up epochs": (
        dict(patience=1, start_from_epoch=3), [1, 2, 3, 4, 5, 5], 4, 3),
    "NaN metric stops when check_finite": (
        dict(patience=5), [3, 2, NAN, 1], 2, 1),
    "NaN metric is just no improvement without check_finite": (
        dict(patience=2, check_finite=False), [3, 2, NAN, 1], 0, 3),
    "never stops at the first epoch, even on NaN": (
        dict(patience=0), [NAN, NAN, NAN], 1, 0),
    "never stops at the first epoch, even below baseline": (
        dict(patience=0, baseline=1.0), [5, 5, 5], 1, 0),
    "stopping_threshold reached": (
        dict(patience=10, stopping_threshold=0.5), [3, 2, 0.5, 0.3], 2, 2),
    "divergence_threshold exceeded": (
        dict(patience=10, divergence_threshold=10), [3, 2, 11, 1], 2, 1),
    "monotonic improvement never stops": (
        dict(patience=0), [5, 4, 3, 2, 1], 0, 4),
}


@pytest.mark.parametrize("options, values, stopped_epoch, best_epoch", CASES.values(),
                         ids=CASES.keys())
def test_stop_epoch_table(options, values, stopped_epoch, best_epoch):
    monitor = options.get("monitor", "val_loss")
    stopper = EarlyStopping(**options)
    trainer = fit([ScriptedMetrics({monitor: values}), stopper], epochs=len(values))
    assert stopper.stopped_epoch == stopped_epoch
    assert stopper.best_epoch == best_epoch
    epochs_run = stopped_epoch + 1 if stopped_epoch else len(values)
    assert trainer.epoch == epochs_run - 1
    assert trainer.stop == bool(stopped_epoch)
    if stopped_epoch:
        assert stopper.stopping_reason
        assert trainer.stop_reason == f"EarlyStopping: {stopper.stopping_reason}"
    else:
        assert stopper.stopping_reason == "" and trainer.stop_reason == ""


def test_stopping_reasons_name_the_cause():
    cases = [(dict(patience=1), [2, 3, 3], "did not improve for 1 epochs"),
             (dict(patience=0), [2, NAN], "is not finite"),
             (dict(stopping_threshold=1.0, patience=9), [2, 1], "reached stopping_threshold"),
             (dict(divergence_threshold=5.0, patience=9), [2, 6], "divergence_threshold"),
             (dict(baseline=0.5, patience=1), [2, 1.5], "did not beat baseline=0.5")]
    for options, values, expected in cases:
        stopper = EarlyStopping(**options)
        fit([ScriptedMetrics({"val_loss": values}), stopper], epochs=len(values))
        assert expected in stopper.stopping_reason, (options, stopper.stopping_reason)
    assert stopper.best == 1.5


# (options, sequence, epoch whose weights the model holds after the fit)
RESTORE_CASES = {
    "stopped: best epoch restored": (dict(patience=2, restore_best_weights=True),
                                     [5, 1, 3, 4, 5, 6], 1),
    "ran to the end: still restored": (dict(patience=9, restore_best_weights=True),
                                       [5, 4, 2, 3, 3], 2),
    "nothing ever improves: the first evaluated epoch": (
        dict(patience=9, restore_best_weights=True, start_from_epoch=1, check_finite=False),
        [1, NAN, NAN, NAN], 1),
    "restore off: last epoch kept": (dict(patience=2), [5, 1, 3, 4, 5, 6], 3),
}


@pytest.mark.parametrize("options, values, restored_epoch", RESTORE_CASES.values(),
                         ids=RESTORE_CASES.keys())
def test_restored_weights_epoch_table(options, values, restored_epoch):
    weights = WeightsPerEpoch()
    trainer = fit([ScriptedMetrics({"val_loss": values}), weights, EarlyStopping(**options)],
                  epochs=len(values))
    assert same_weights(trainer.model, weights.weights[restored_epoch])
    later = [e for e in weights.weights if e != restored_epoch]
    assert not any(same_weights(trainer.model, weights.weights[e]) for e in later)


def test_best_weights_restored_when_training_fails():
    def explode(trainer):
        if trainer.epoch == 3:
            raise RuntimeError("boom at epoch 3")
    failing = LambdaCallback(on_fit_epoch_end=explode)
    failing.order = 40
    weights = WeightsPerEpoch()
    model = tiny_model()
    with pytest.raises(RuntimeError, match="boom at epoch 3"):
        fit([ScriptedMetrics({"val_loss": [5, 1, 3, 4, 5]}), weights, EarlyStopping(patience=9,
                                                                 restore_best_weights=True),
             failing], epochs=5, model=model)
    assert same_weights(model, weights.weights[1])


def test_restore_does_not_touch_standalone_validation_after_fit():
    weights = WeightsPerEpoch()
    stopper = EarlyStopping(patience=9, restore_best_weights=True)
    trainer = fit([ScriptedMetrics({"val_loss": [5, 1, 3]}), weights, stopper], epochs=3)
    with torch.no_grad():
        for parameter in trainer.model.parameters():
            parameter.add_(1.0)
    trainer.validate(data=tiny_data(samples=8))  # its teardown must not restore again
    assert not same_weights(trainer.model, weights.weights[1])


@pytest.mark.parametrize("name, mode", [
    ("val_loss", "min"), ("loss", "min"), ("train/loss", "min"), ("val_error", "min"),
    ("val_mape", "min"), ("dice_loss", "min"), ("valloss", "min"),
    ("val_accuracy", "max"), ("acc", "max"), ("val_f1", "max"), ("map50", "max"),
    ("val_auc", "max"), ("precision", "max"), ("cancer_recall", "max"), ("miou", "max"),
    ("val_dice", "max")])
def test_mode_inference(name, mode):
    assert infer_mode(name, "auto", owner="EarlyStopping") == mode
    assert EarlyStopping(monitor=name).mode == mode


@pytest.mark.parametrize("options, message", [
    (dict(monitor="val_score"), r"cannot tell whether 'val_score'.*mode='min' or mode='max'"),
    (dict(patience=-1), r"patience=-1.*integer >= 0"),
    (dict(patience=1.5), r"patience=1.5.*integer >= 0"),
    (dict(mode="bigger"), r"mode='bigger'.*one of 'auto', 'min', 'max'"),
    (dict(min_delta=-0.1), r"min_delta=-0.1.*>= 0"),
    (dict(start_from_epoch=-2), r"start_from_epoch=-2"),
    (dict(baseline="low"), r"baseline='low'.*number or None"),
    (dict(stopping_threshold=5.0, divergence_threshold=1.0), r"goal must be better"),
    (dict(monitor=""), r"monitor=''.*name of a metric"),
])
def test_bad_options_raise_at_construction(options, message):
    with pytest.raises(ValueError, match=message):
        EarlyStopping(**options)


@pytest.mark.parametrize("options", [
    dict(monitor="val_loss", min_delta=0.5, stopping_threshold=1.0, divergence_threshold=1.2),
    dict(monitor="val_accuracy", min_delta=0.01, stopping_threshold=0.95,
         divergence_threshold=0.945),
])
def test_a_goal_better_than_the_divergence_limit_by_less_than_min_delta_is_accepted(options):
    """min_delta is patience's improvement step, not a gap the two thresholds must keep."""
    stopper = EarlyStopping(**options)
    assert (stopper.stopping_threshold, stopper.divergence_threshold) == (
        options["stopping_threshold"], options["divergence_threshold"])
    with pytest.raises(ValueError, match="goal must be better"):
        EarlyStopping(**{**options, "divergence_threshold": options["stopping_threshold"]})


def test_missing_metric_strict_raises_with_the_metrics_there_are():
    with pytest.raises(ValueError, match=r"'val_loss', which is not among.*\['loss'\]"):
        fit([EarlyStopping(monitor="val_loss")], epochs=2)


def test_missing_metric_not_strict_warns_and_never_stops():
    stopper = EarlyStopping(monitor="val_loss", patience=0, strict=False)
    with pytest.warns(RuntimeWarning, match="val_loss"):
        trainer = fit([stopper], epochs=3)
    assert trainer.epoch == 2 and stopper.stopped_epoch == 0


def fake_trainer():
    trainer = SimpleNamespace(epoch=0, metrics={}, stop=False, stop_reason="",
                              model=torch.nn.Linear(2, 1))

    def request_stop(reason):
        trainer.stop = True
        trainer.stop_reason = trainer.stop_reason or reason
    trainer.request_stop = request_stop
    return trainer


def run_epochs(stopper, trainer, values, first_epoch=0):
    for epoch, value in enumerate(values, start=first_epoch):
        trainer.epoch, trainer.metrics = epoch, {"val_loss": value}
        stopper.on_fit_epoch_end(trainer)
        if trainer.stop:
            return epoch
    return None


def test_state_dict_resumes_the_counters():
    values = [5, 4, 6, 6, 6]
    uninterrupted = EarlyStopping(patience=3)
    uninterrupted.on_train_start(fake_trainer())
    assert run_epochs(uninterrupted, fake_trainer(), values) == 4

    first = EarlyStopping(patience=3)
    trainer = fake_trainer()
    first.on_train_start(trainer)
    assert run_epochs(first, trainer, values[:3]) is None
    state = first.state_dict()
    assert state["wait"] == 1 and state["best"] == 4 and state["best_epoch"] == 1

    resumed = EarlyStopping(patience=3)
    resumed.load_state_dict(state)
    trainer = fake_trainer()
    resumed.on_train_start(trainer)  # a loaded state is not reset
    assert run_epochs(resumed, trainer, values[3:], first_epoch=3) == 4
    assert resumed.best_epoch == 1

    fresh = EarlyStopping(patience=3)
    fresh.load_state_dict(state)
    fresh.on_train_start(fake_trainer())
    fresh.on_train_start(fake_trainer())  # a second run of the same instance starts over
    assert fresh.wait == 0 and fresh.best == math.inf


def test_state_includes_best_weights_when_restoring():
    stopper = EarlyStopping(patience=5, restore_best_weights=True)
    trainer = fake_trainer()
    stopper.on_train_start(trainer)
    run_epochs(stopper, trainer, [3, 1, 2])
    state = stopper.state_dict()
    assert state["best_weights_epoch"] == 1
    assert set(state["best_weights"]) == {"weight", "bias"}
    assert "best_weights" not in EarlyStopping(patience=5).state_dict()


def test_instance_reused_across_fits_starts_over():
    stopper = EarlyStopping(patience=1)
    fit([ScriptedMetrics({"val_loss": [3, 4, 4]}), stopper], epochs=3)
    assert stopper.stopped_epoch == 1
    fit([ScriptedMetrics({"val_loss": [3, 2, 1]}), stopper], epochs=3)
    assert stopper.stopped_epoch == 0 and stopper.best == 1 and stopper.best_epoch == 2


def test_state_key_depends_on_configuration():
    keys = {EarlyStopping(monitor="val_loss").state_key,
            EarlyStopping(monitor="val_accuracy").state_key,
            EarlyStopping(monitor="val_loss", mode="max").state_key}
    assert len(keys) == 3
    trainer = fit([ScriptedMetrics({"val_loss": [3, 2], "val_accuracy": [0.1, 0.2]}),
                   EarlyStopping(), EarlyStopping(monitor="val_accuracy")], epochs=2)
    states = trainer.callbacks.state_dict()
    saved = [key for key in states if key.startswith("EarlyStopping")]
    assert len(saved) == 2
    assert {states[key]["best"] for key in saved} == {2, 0.2}


def test_verbose_says_why_and_what_was_restored(capsys):
    fit([ScriptedMetrics({"val_loss": [3, 4, 4]}), EarlyStopping(patience=1, verbose=1,
                                            restore_best_weights=True)], epochs=3)
    out = capsys.readouterr().out
    assert "Epoch 1: early stopping: val_loss did not improve" in out
    assert "restored the weights of epoch 0" in out


# --- resuming a run that EarlyStopping ended ----------------------------------------------
def resumable(callbacks, epochs, folder, **options):
    """A fit of one batch per epoch whose every epoch is saved as a full checkpoint."""
    checkpoint = ModelCheckpoint(dirpath=folder, filename="m-{epoch}", save_last=True)
    epochs_seen = RecordingCallback(capture=("epoch",), events=("on_train_epoch_start",))
    x, y = tiny_data(samples=16)
    trainer = hookline.Trainer(tiny_model(), loss="cross_entropy", train_data=(x, y),
                               batch_size=16, epochs=epochs, lr=0.05, default_callbacks=False,
                               callbacks=[*callbacks, checkpoint, epochs_seen,
                                          hookline.History()],
                               verbose=0, device="cpu", seed=0, **options)
    trainer.fit()
    trainer.epochs_trained = [snapshot["epoch"] for _, snapshot in epochs_seen.records]
    return trainer


STOPS_AT_2 = [3, 2, 4, 2.5, 1, 0.5, 0.4, 0.3, 0.2, 0.1]  # patience=1: no improvement at 2


def test_an_early_stopped_run_resumed_with_the_same_epochs_trains_nothing(tmp_path):
    first = resumable([ScriptedMetrics({"val_loss": STOPS_AT_2}), EarlyStopping(patience=1)],
                      6, tmp_path / "ckpt")
    assert first.epochs_trained == [0, 1, 2] and first.stop_reason.startswith("EarlyStopping")
    weights = {k: v.clone() for k, v in first.model.state_dict().items()}
    stopper = EarlyStopping(patience=1)
    with pytest.warns(RuntimeWarning, match=r"stopped after epoch 2 \(EarlyStopping: val_loss "
                                            r"did not improve.*nothing left to train.*epochs= "
                                            r"larger than 6"):
        again = resumable([ScriptedMetrics({"val_loss": STOPS_AT_2}), stopper], 6,
                          tmp_path / "ckpt", resume=tmp_path / "ckpt" / "last.pt")
    assert again.epochs_trained == [] and same_weights(again.model, weights)
    assert (stopper.stopped_epoch, stopper.best, stopper.best_epoch, stopper.wait) == (2, 2, 1, 1)
    # fewer epochs than the stopped run had: finished all the same, not a conflict
    with pytest.warns(RuntimeWarning, match="nothing left to train"):
        fewer = resumable([ScriptedMetrics({"val_loss": STOPS_AT_2}), EarlyStopping(patience=1)],
                          4, tmp_path / "ckpt", resume=tmp_path / "ckpt" / "last.pt")
    assert fewer.epochs_trained == []


def test_an_early_stopped_run_given_more_epochs_continues_after_its_last_epoch(tmp_path):
    resumable([ScriptedMetrics({"val_loss": STOPS_AT_2}), EarlyStopping(patience=1)], 6,
              tmp_path / "ckpt")
    stopper = EarlyStopping(patience=1)
    more = resumable([ScriptedMetrics({"val_loss": STOPS_AT_2}), stopper], 10,
                     tmp_path / "ckpt", resume=tmp_path / "ckpt" / "last.pt")
    # epoch 3 follows epoch 2 (not epoch 6, the old run's end). The stopper's counters came
    # back: 2.5 does not beat the best 2 of epoch 1, so the wait reaches 2 and it stops at 3;
    # a fresh stopper would not stop at the first epoch it evaluates
    assert more.epochs_trained == [3]
    assert (stopper.stopped_epoch, stopper.best, stopper.best_epoch, stopper.wait) == (3, 2, 1, 2)
    assert more.stop_reason == "EarlyStopping: " + stopper.stopping_reason
    assert more.callbacks.find(hookline.History)[0].epoch == [0, 1, 2, 3]


def test_an_extended_run_that_improves_trains_on_and_forgets_the_old_stop(tmp_path):
    values = [3, 2, 4, 1, 0.5, 0.4, 0.3, 0.2]  # stops at 2; improves from epoch 3 on
    resumable([ScriptedMetrics({"val_loss": values}), EarlyStopping(patience=1)], 4,
              tmp_path / "ckpt")
    stopper = EarlyStopping(patience=1)
    more = resumable([ScriptedMetrics({"val_loss": values}), stopper], 8,
                     tmp_path / "ckpt", resume=tmp_path / "ckpt" / "last.pt")
    assert more.epochs_trained == [3, 4, 5, 6, 7]
    assert more.stop_reason == "" and stopper.stopped_epoch == 0  # this run was not stopped
    assert stopper.stopping_reason == ""
    assert (stopper.best, stopper.best_epoch, stopper.wait) == (0.2, 7, 0)


def test_a_stop_that_min_epochs_held_back_is_no_end_of_the_run_on_resume(tmp_path):
    values = {"val_loss": [3, 2, 4, 5, 6, 7, 8, 9]}  # asks to stop from epoch 2 on
    expected = resumable([ScriptedMetrics(values), EarlyStopping(patience=1)], 8,
                         tmp_path / "expected", min_epochs=5)
    assert expected.epochs_trained == [0, 1, 2, 3, 4]
    stopper = EarlyStopping(patience=1)
    resumed = resumable([ScriptedMetrics(values), stopper], 8, tmp_path / "expected",
                        min_epochs=5, resume=tmp_path / "expected" / "m-2.pt")
    assert resumed.epochs_trained == [3, 4] and stopper.stopped_epoch == 4
    assert same_weights(resumed.model, expected.model.state_dict())


def test_a_stop_that_min_epochs_held_back_and_never_renewed_is_reported_nowhere():
    """EarlyStopping asks at epoch 2, min_epochs=4 holds it back, the metric then improves:
    the run trains to its end, so neither the trainer nor the stopper reports a stop, and a
    later stop of another cause names its own reason."""
    values = [5, 4, 4.5, 3, 2, 1, 0.5]  # no improvement at epoch 2 only
    stopper = EarlyStopping(patience=1)
    trainer = fit([ScriptedMetrics({"val_loss": values}), stopper], 7, min_epochs=4)
    assert trainer.epoch == 6
    assert trainer.stop_reason == "" and stopper.stopped_epoch == 0
    assert stopper.stopping_reason == "" and (stopper.best, stopper.best_epoch) == (0.5, 6)
    # one batch per epoch: max_steps=5 ends training after epoch 4
    stopper = EarlyStopping(patience=1)
    trainer = fit([ScriptedMetrics({"val_loss": values}), stopper], 7, min_epochs=4,
                  max_steps=5)
    assert trainer.epoch == 4 and trainer.stop_reason == "max_steps=5 reached"
    assert stopper.stopped_epoch == 0


def test_each_validation_inside_the_epoch_is_a_check_and_a_stop_ends_the_epoch_there(
        tmp_path):
    """val_check_interval (Lightning's rule): every validation is a check, patience counts
    checks, and a stop asked after a mid-epoch validation ends the epoch at that batch."""
    scripted = [3.0, 2.0, 2.5] + [2.0] * 20  # one value per validation, in order
    calls = []

    def validation_step(trainer, batch):
        calls.append(trainer.step)
        return torch.tensor(scripted[len(calls) - 1])

    stopper = EarlyStopping(patience=1)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="s{step}", monitor="val_loss")
    x, y = tiny_data(samples=64)  # four batches an epoch: three validations inside it
    trainer = hookline.Trainer(tiny_model(), loss="cross_entropy", train_data=(x, y),
                               val_data=tiny_data(samples=16, seed=1), batch_size=16,
                               epochs=3, val_check_interval=1, metrics=[],
                               validation_step=validation_step,
                               callbacks=[stopper, checkpoint],
                               default_callbacks=False, verbose=0, device="cpu", seed=0)
    trainer.fit()
    # checks at steps 1 (best 3.0), 2 (best 2.0) and 3 (2.5: one without improvement)
    assert stopper.stopping_reason == "val_loss did not improve for 1 validations (best 2 at epoch 0)"
    assert trainer.step == 3 and trainer.epoch == 0  # the epoch ended after its third batch
    assert calls == [1, 2, 3]  # its end takes that validation's results, as in Lightning
    assert trainer.metrics["val_loss"] == 2.5  # (before: a second pass of the same weights)
    assert (stopper.best, stopper.best_epoch, stopper.stopped_epoch) == (2.0, 0, 0)
    # the epoch's end saw the weights of the last check again: not counted or saved twice
    assert stopper.evaluated == 3
    assert sorted(path.name for path in tmp_path.iterdir()) == ["s1.pt", "s2.pt", "s3.pt"]
