"""OptunaPruning: report a metric to an Optuna trial every epoch and stop the trials it prunes."""

from __future__ import annotations

import math
from typing import Any

from hookline.callback import Callback
from hookline.callbacks.monitor import check_choice, infer_mode
from hookline.loggers._optional import require

__all__ = ["OptunaPruning"]

_DIRECTIONS = {"MINIMIZE": "min", "MAXIMIZE": "max"}


class OptunaPruning(Callback):
    """Let an Optuna pruner end unpromising trials early (extra ``hookline[optuna]``).

    Args:
        trial: the ``optuna.Trial`` the objective received.
        monitor: the metric of ``trainer.metrics`` reported each epoch, e.g. ``"val_loss"``.
        mode: ``"min"`` or ``"max"``: the direction ``monitor`` improves in. It must agree with
            the study's direction, since the pruner compares the reported values in that
            direction; ``"auto"`` infers it from the name (loss/error: min, accuracy...: max)
            and skips the check when the name says nothing.

    At every ``on_fit_epoch_end`` the value is reported with ``trial.report(value,
    step=epoch)`` (0-based). When ``trial.should_prune()`` says so, training stops cleanly
    after that epoch, like an early stop: ``on_train_end`` and ``teardown`` run as usual (a
    logger ends its run as finished, not failed; ``on_exception`` does not fire). Then, as the
    last thing of ``teardown``, ``optuna.TrialPruned`` is raised out of ``fit()``, so Optuna
    records the trial as pruned. Keep the default ``on_error="raise"``: with ``"warn"`` the
    hookline dispatcher would turn that exception into a warning and the trial would complete.

    Example::

        def objective(trial):
            lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
            trainer = hookline.Trainer(model_fn(), optimizer="adam", lr=lr,
                                       loss="cross_entropy", train_data=train, val_data=val,
                                       epochs=10, callbacks=[OptunaPruning(trial)])
            return trainer.fit()["val_loss"]

        study = optuna.create_study(direction="minimize", pruner=optuna.pruners.MedianPruner())
        study.optimize(objective, n_trials=20)
    """

    # After the callbacks that add metrics and the loggers (order 80-95), so the value reported
    # is final and, at teardown, the exception comes after every other callback's clean-up.
    order = 1000
    # One trial is reported to once: in a distributed run rank 0 reports, and the engine's
    # agreement on stopping ends the other ranks after the same epoch.
    rank_zero_only = True

    def __init__(self, trial: Any, monitor: str = "val_loss", mode: str = "auto") -> None:
        if not callable(getattr(trial, "report", None)) or \
                not callable(getattr(trial, "should_prune", None)):
            raise TypeError(f"OptunaPruning(trial=...) must be the optuna.Trial your objective "
                            f"received, got {type(trial).__name__}: {trial!r}")
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"OptunaPruning(monitor={monitor!r}) is not allowed; monitor must "
                             f"be the name of a metric in trainer.metrics, such as 'val_loss'")
        check_choice("OptunaPruning", "mode", mode, ("auto", "min", "max"))
        self.trial = trial
        self.monitor = monitor
        self.mode = _resolve_mode(monitor, mode)
        _check_direction(trial, monitor, self.mode, explicit=mode != "auto")
        self.pruned = False
        self.message = ""

    def on_pretrain_routine_start(self, trainer: Any) -> None:
        self.pruned, self.message = False, ""

    def on_fit_epoch_end(self, trainer: Any) -> None:
        metrics = trainer.metrics
        if self.monitor not in metrics:
            raise ValueError(
                f"OptunaPruning monitors {self.monitor!r}, which is not among this epoch's "
                f"metrics {sorted(metrics)}; pass monitor= one of them (val_* metrics need "
                f"val_data)")
        value = metrics[self.monitor]
        value = math.nan if value is None else float(value)
        epoch = trainer.epoch
        self.trial.report(value, step=epoch)
        if self.trial.should_prune():
            number = getattr(self.trial, "number", "?")
            self.pruned = True
            self.message = (f"Optuna pruned trial {number} at epoch {epoch} "
                            f"({self.monitor}={value:.6g})")
            trainer.request_stop(self.message)

    def teardown(self, engine: Any) -> None:
        # A run that failed keeps its own exception: pruning must not hide it.
        if engine.exception is None:
            self.check_pruned()

    def check_pruned(self) -> None:
        """Raise ``optuna.TrialPruned`` if the last fit was pruned (once; it then resets)."""
        if not self.pruned:
            return
        optuna = require("optuna", extra="optuna", feature="OptunaPruning")
        message, self.pruned = self.message, False
        raise optuna.TrialPruned(message)


def _resolve_mode(monitor: str, mode: str) -> str | None:
    if mode != "auto":
        return mode
    try:
        return infer_mode(monitor, "auto", owner="OptunaPruning")
    except ValueError:
        return None  # a name that says nothing: the study's direction decides alone


def _check_direction(trial: Any, monitor: str, mode: str | None, *, explicit: bool) -> None:
    """Fail before training when the study optimises the other way than ``monitor`` improves:
    the pruner would then stop the best trials."""
    study = getattr(trial, "study", None)  # a FixedTrial has none
    directions = getattr(study, "directions", None)
    if not directions:
        return
    if len(directions) > 1:
        raise ValueError(f"OptunaPruning needs a single-objective study; this one has "
                         f"{len(directions)} objectives, and Optuna cannot prune those "
                         f"(trial.report is single-objective)")
    direction = _DIRECTIONS.get(getattr(directions[0], "name", ""))
    if mode is None or direction is None or direction == mode:
        return
    said = f"mode={mode!r}" if explicit else f"mode='auto' reads {monitor!r} as {mode!r}"
    wanted = "minimize" if mode == "min" else "maximize"
    raise ValueError(
        f"OptunaPruning(monitor={monitor!r}): {said}, but the study's direction is "
        f"{'minimize' if direction == 'min' else 'maximize'}, so its pruner would stop the best "
        f"trials. Create the study with direction={wanted!r}, or monitor a metric that improves "
        f"in the study's direction.")
