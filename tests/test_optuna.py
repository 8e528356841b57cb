"""OptunaPruning against real in-memory Optuna studies.

A ThresholdPruner prunes deterministically: each trial's reported values are a fixed schedule
written into ``trainer.metrics`` by a small callback, so whether and when a trial is pruned does
not depend on floating-point training results.
"""

from __future__ import annotations

import json
import subprocess
import sys

import optuna
import pytest

from hookline import Model, Trainer
from hookline.callbacks import History, LambdaCallback
from hookline.loggers import OptunaPruning
from hookline.testing import RecordingCallback, tiny_data, tiny_model

optuna.logging.set_verbosity(optuna.logging.WARNING)

EPOCHS = 4
# per trial kind: the "score" of each epoch; ThresholdPruner(upper=1.0) prunes above 1.0
SCHEDULES = {"good": [0.9, 0.7, 0.5, 0.3], "bad": [0.9, 0.8, 1.5, 0.2]}


def _trainer(callbacks: list, *, epochs: int = EPOCHS, val: bool = True) -> Trainer:
    x, y = tiny_data(48)
    return Trainer(tiny_model(), loss="cross_entropy", train_data=(x[:32], y[:32]),
                   val_data=(x[32:], y[32:]) if val else None, epochs=epochs, batch_size=16,
                   seed=0, verbose=0, device="cpu", callbacks=callbacks)


def _scripted_score(schedule: list[float]) -> LambdaCallback:
    """Adds metrics["score"] = schedule[epoch] before OptunaPruning reads the metrics."""
    def add(trainer: Trainer) -> None:
        trainer.metrics["score"] = schedule[trainer.epoch]
    callback = LambdaCallback(on_fit_epoch_end=add)
    callback.order = -10
    return callback


def _study(pruner: optuna.pruners.BasePruner, direction: str = "minimize") -> optuna.Study:
    study = optuna.create_study(direction=direction, pruner=pruner,
                                sampler=optuna.samplers.RandomSampler(seed=0))
    for kind in ("good", "bad", "good"):
        study.enqueue_trial({"kind": kind})
    return study


def test_pruned_trials_stop_cleanly_at_the_pruning_epoch_and_are_recorded_pruned():
    runs: dict[int, dict] = {}

    def objective(trial: optuna.Trial) -> float:
        kind = trial.suggest_categorical("kind", ["good", "bad"])
        recorder = RecordingCallback(capture=("epoch",), events=(
            "on_fit_epoch_end", "on_train_end", "on_exception", "teardown"))
        history = History()
        trainer = _trainer([_scripted_score(SCHEDULES[kind]), history, recorder,
                            OptunaPruning(trial, monitor="score", mode="min")])
        runs[trial.number] = {"recorder": recorder, "history": history, "trainer": trainer}
        return trainer.fit()["score"]

    study = _study(optuna.pruners.ThresholdPruner(upper=1.0))
    study.optimize(objective, n_trials=3)

    states = [trial.state for trial in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
                      optuna.trial.TrialState.COMPLETE]
    pruned = runs[1]
    # reported at epochs 0, 1, 2; 1.5 > 1.0 at epoch 2 pruned it, so epoch 3 never ran
    assert study.trials[1].intermediate_values == {0: 0.9, 1: 0.8, 2: 1.5}
    assert pruned["history"].epoch == [0, 1, 2]
    assert pruned["trainer"].stop_reason == "Optuna pruned trial 1 at epoch 2 (score=1.5)"
    # a clean stop: on_train_end and teardown ran, on_exception did not
    events = pruned["recorder"].events
    assert events[-2:] == ["on_train_end", "teardown"]
    assert "on_exception" not in events
    assert study.trials[1].value == 1.5  # Optuna keeps the last reported value


def test_completed_trials_report_every_epoch_and_the_objective_returns_the_value():
    reported: list[list[float]] = []

    def objective(trial: optuna.Trial) -> float:
        history = History()
        trainer = _trainer([history, OptunaPruning(trial)])  # monitor="val_loss"
        metrics = trainer.fit()
        reported.append(history.history["val_loss"])
        return metrics["val_loss"]

    # a pruner that never prunes: every epoch's value is still reported
    study = optuna.create_study(direction="minimize", pruner=optuna.pruners.NopPruner())
    study.optimize(objective, n_trials=1)

    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert trial.intermediate_values == dict(enumerate(reported[0]))
    assert len(trial.intermediate_values) == EPOCHS
    assert trial.value == reported[0][-1] == study.best_value


def test_a_missing_monitor_names_the_metrics_there_are():
    study = optuna.create_study()
    trial = study.ask()
    trainer = _trainer([OptunaPruning(trial, monitor="valid_loss")], epochs=1)
    with pytest.raises(ValueError, match=r"OptunaPruning monitors 'valid_loss', which is not "
                                         r"among this epoch's metrics \['loss', 'val_accuracy', "
                                         r"'val_loss'\]; pass monitor= one of them"):
        trainer.fit()


def test_a_monitor_that_improves_against_the_study_direction_is_refused_before_training():
    minimize = optuna.create_study(direction="minimize").ask()
    with pytest.raises(ValueError, match=r"mode='auto' reads 'val_accuracy' as 'max', but the "
                                         r"study's direction is minimize.*direction='maximize'"):
        OptunaPruning(minimize, monitor="val_accuracy")
    maximize = optuna.create_study(direction="maximize").ask()
    with pytest.raises(ValueError, match=r"mode='min', but the study's direction is maximize"):
        OptunaPruning(maximize, monitor="score", mode="min")
    OptunaPruning(maximize, monitor="score")  # the name says nothing: the study decides
    OptunaPruning(maximize, monitor="val_accuracy")
    multi = optuna.create_study(directions=["minimize", "maximize"]).ask()
    with pytest.raises(ValueError, match="needs a single-objective study"):
        OptunaPruning(multi)
    with pytest.raises(TypeError, match=r"must be the optuna.Trial your objective received"):
        OptunaPruning("trial")
    with pytest.raises(ValueError, match=r"mode must be one of 'auto', 'min', 'max'"):
        OptunaPruning(minimize, mode="down")


def test_a_pruned_instance_raises_once_and_a_fixed_trial_never_prunes():
    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=1.0))
    trial = study.ask()
    pruning = OptunaPruning(trial, monitor="score", mode="min")
    trainer = _trainer([_scripted_score([2.0, 0.1]), pruning], epochs=2)
    with pytest.raises(optuna.TrialPruned, match="pruned trial 0 at epoch 0"):
        trainer.fit()
    assert trainer.epoch == 0
    trainer.validate()  # a later run of the same trainer does not raise the prune again

    # re-running the best params: a FixedTrial reports nowhere and never prunes
    fixed = optuna.trial.FixedTrial({"lr": 0.01})
    assert _trainer([_scripted_score([2.0, 2.0]), OptunaPruning(fixed, monitor="score")],
                    epochs=2).fit()["score"] == 2.0


def test_the_keras_door_prunes_too():
    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=0.0))
    trial = study.ask()
    x, y = tiny_data(32)
    model = Model(tiny_model(), optimizer="adam", loss="cross_entropy")
    with pytest.raises(optuna.TrialPruned, match=r"epoch 0 \(val_loss="):
        model.fit(x.numpy(), y.numpy(), epochs=3, validation_split=0.25, verbose=0,
                  callbacks=[OptunaPruning(trial)])
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    assert list(study.trials[0].intermediate_values) == [0]


def test_importing_the_integration_does_not_import_optuna(tmp_path):
    script = ("import json, sys\nimport hookline.loggers\n"
              "from hookline.loggers import OptunaPruning\n"
              "print(json.dumps('optuna' in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) is False


def test_a_run_that_fails_after_pruning_keeps_its_own_error():
    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=1.0))

    def broken_clean_up(trainer: Trainer) -> None:
        raise RuntimeError("disk full")

    trainer = _trainer([_scripted_score([2.0, 0.1]), LambdaCallback(on_train_end=broken_clean_up),
                        OptunaPruning(study.ask(), monitor="score", mode="min")], epochs=2)
    with pytest.raises(RuntimeError, match="disk full") as raised:
        trainer.fit()
    assert not any("TrialPruned" in note for note in getattr(raised.value, "__notes__", []))
