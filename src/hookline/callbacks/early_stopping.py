"""EarlyStopping: end training when a monitored metric stops improving."""

from __future__ import annotations

import math
from typing import Any

import torch

from hookline.callback import Callback
from hookline.callbacks.monitor import Monitor, check_non_negative, config_key
from hookline.files.checkpoint_format import check_model_state

__all__ = ["EarlyStopping"]


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has not improved for ``patience`` epochs.

    It acts at ``on_fit_epoch_end`` (after validation) through ``trainer.request_stop(reason)``;
    the engine ends the run after that epoch, so checkpoint callbacks still save it.

    Args:
        monitor: the metric in ``trainer.metrics`` to watch (default ``"val_loss"``).
        min_delta: an improvement must beat the best by more than this (absolute, >= 0).
        patience: epochs without improvement before stopping; the stop happens at the
            ``patience``-th consecutive epoch that did not improve (Keras and Lightning agree).
            With ``val_check_interval`` and a ``val_*`` monitor every validation is a check,
            mid-epoch ones included, and patience counts checks (Lightning's rule).
        mode: "min", "max" or "auto" (min for loss/error names, max for accuracy-like names).
        baseline: a value the metric must beat; until it does, no epoch counts as an
            improvement, so the run stops ``patience`` epochs after ``start_from_epoch``.
        restore_best_weights: put back the weights of the best epoch whenever training ends,
            whatever the reason (finished, stopped, or an exception). A copy of the best
            weights is kept on the CPU.
        start_from_epoch: epochs before this one are ignored (warm-up).
        check_finite: stop as soon as the metric is NaN or infinite.
        stopping_threshold: stop as soon as the metric reaches this value (goal met).
        divergence_threshold: stop as soon as the metric is worse than this value.
        strict: a missing metric raises (True) or warns and skips the epoch (False).
        verbose: print why training stopped and when weights are restored.

    The run never stops at the first epoch this callback evaluates, whatever the rule: one
    value is not a trend. After the run ``stopped_epoch`` is the epoch it stopped at (0 when it
    did not stop, as in Keras and Lightning), ``best``/``best_epoch`` the best value and its
    epoch, ``stopping_reason`` a sentence saying why.

    Example::

        stopper = EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
        Trainer(model, loss="cross_entropy", train_data=(x, y), val_data=(xv, yv),
                epochs=100, callbacks=[stopper]).fit()
        print(stopper.stopped_epoch, stopper.best_epoch, stopper.stopping_reason)
    """

    order = 30
    on_error = "raise"

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0,
                 verbose: int = 0, mode: str = "auto", baseline: float | None = None,
                 restore_best_weights: bool = False, start_from_epoch: int = 0, *,
                 check_finite: bool = True, stopping_threshold: float | None = None,
                 divergence_threshold: float | None = None, strict: bool = True) -> None:
        owner = "EarlyStopping"
        self.monitor = Monitor(monitor, mode=mode, min_delta=min_delta, strict=strict,
                               owner=owner)
        check_non_negative(owner, "patience", patience, integer=True)
        check_non_negative(owner, "start_from_epoch", start_from_epoch, integer=True)
        for name, value in (("baseline", baseline), ("stopping_threshold", stopping_threshold),
                            ("divergence_threshold", divergence_threshold)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or math.isnan(value)):
                raise ValueError(f"{owner}({name}={value!r}) is not allowed; {name} must be a "
                                 f"number or None")
        # the thresholds are compared as values, without min_delta (which is patience's)
        if stopping_threshold is not None and divergence_threshold is not None and \
                self.monitor.reached(float(divergence_threshold), float(stopping_threshold)):
            raise ValueError(
                f"{owner}(stopping_threshold={stopping_threshold!r}, divergence_threshold="
                f"{divergence_threshold!r}) with mode={self.monitor.mode!r}: the goal must be "
                f"better than the divergence limit; swap them or check mode")
        self.patience = patience
        self.verbose = verbose
        self.baseline = None if baseline is None else float(baseline)
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = start_from_epoch
        self.check_finite = bool(check_finite)
        self.stopping_threshold = stopping_threshold
        self.divergence_threshold = divergence_threshold
        self._loaded = False
        self._active = False
        self._reset()

    @property
    def mode(self) -> str:
        return self.monitor.mode

    @property
    def state_key(self) -> str:
        return config_key("EarlyStopping", monitor=self.monitor.name, mode=self.monitor.mode)

    def _reset(self) -> None:
        self.wait = 0
        self.evaluated = 0
        self.best: float = self.monitor.worst
        self.best_epoch = 0
        self.stopped_epoch = 0
        self.stopping_reason = ""
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.best_weights_epoch = 0
        self._checked_at: tuple[int, int] | None = None  # (epoch, step) of a mid-epoch check
        self._unit = "epochs"

    # --- events ---------------------------------------------------------------------------
    def on_train_start(self, trainer: Any) -> None:
        if not self._loaded:
            self._reset()
        elif self.stopped_epoch and hasattr(trainer, "stop_reason") and not trainer.stop_reason:
            # resumed past the stop it had asked for (a stopped run given more epochs): the
            # counters and the best carry on, the stop no longer holds
            self.stopped_epoch, self.stopping_reason = 0, ""
        self._loaded = False
        self._active = True

    def on_mid_epoch_val_end(self, trainer: Any) -> None:
        """A ``val_check_interval`` validation is a check like an epoch's (Lightning's rule);
        a monitor that is not ``val_*`` still holds the last epoch's value there: skipped."""
        if self.monitor.name.startswith(("val_", "val/")):
            self._unit = "validations"  # patience counts checks, not epochs, from here on
            self.on_fit_epoch_end(trainer)
            self._checked_at = (int(trainer.epoch), int(trainer.step))

    def on_fit_epoch_end(self, trainer: Any) -> None:
        epoch = trainer.epoch
        if self.stopped_epoch and not trainer.stop:
            # the stop it asked for was held back (min_epochs, min_steps): it stopped nothing
            self.stopped_epoch, self.stopping_reason = 0, ""
        if epoch < self.start_from_epoch:
            return
        if self._checked_at is not None and self._checked_at == (epoch, trainer.step):
            return  # the epoch ended right after a mid-epoch check (a stop): the same weights
        current = self.monitor.read(trainer)
        if current is None:
            return
        self.evaluated += 1
        if self.restore_best_weights and self.best_weights is None:
            self._keep_weights(trainer, epoch)  # until something beats it, this is the best
        improved = self.monitor.is_better(current, self.best)
        if improved:
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self._keep_weights(trainer, epoch)
        # Keras' rule: only an epoch that beats both the best and the baseline resets patience.
        if improved and (self.baseline is None or self.monitor.is_better(current, self.baseline)):
            self.wait = 0
        else:
            self.wait += 1
        reason = self._reason_to_stop(current)
        if reason and self.evaluated > 1:
            self.stopped_epoch = epoch
            self.stopping_reason = reason
            trainer.request_stop(f"EarlyStopping: {reason}")
            if self.verbose:
                print(f"Epoch {epoch}: early stopping: {reason}")

    def _reason_to_stop(self, current: float) -> str:
        name, monitor = self.monitor.name, self.monitor
        if self.check_finite and not math.isfinite(current):
            return f"{name} = {current} is not finite"
        if self.stopping_threshold is not None and monitor.reached(current,
                                                                   self.stopping_threshold):
            return f"{name} = {current:.6g} reached stopping_threshold={self.stopping_threshold}"
        if self.divergence_threshold is not None and not monitor.reached(
                current, self.divergence_threshold):
            return (f"{name} = {current:.6g} is worse than "
                    f"divergence_threshold={self.divergence_threshold}")
        if self.wait >= max(self.patience, 1):
            if self.baseline is not None and not monitor.is_better(self.best, self.baseline):
                return (f"{name} did not beat baseline={self.baseline} in {self.wait} "
                        f"{self._unit} (best {self.best:.6g})")
            return (f"{name} did not improve for {self.wait} {self._unit} "
                    f"(best {self.best:.6g} at epoch {self.best_epoch})")
        return ""

    def on_train_end(self, trainer: Any) -> None:
        self._restore(trainer)

    def on_exception(self, trainer: Any) -> None:
        self._restore(trainer)

    def teardown(self, trainer: Any) -> None:
        self._restore(trainer)

    def _keep_weights(self, trainer: Any, epoch: int) -> None:
        # A CPU copy: the best weights must not double the model's accelerator memory.
        self.best_weights = {name: tensor.detach().to("cpu", copy=True)
                             for name, tensor in trainer.model.state_dict().items()}
        self.best_weights_epoch = epoch

    def _restore(self, trainer: Any) -> None:
        if not self._active:
            return  # not in a fit (teardown also ends standalone validate/predict runs)
        self._active = False
        if self.restore_best_weights and self.best_weights is not None:
            # the best weights of a resumed checkpoint keep its model's names: a wrapper's
            # prefix (DataParallel's "module.") is matched to this model's
            trainer.model.load_state_dict(check_model_state(trainer.model, self.best_weights))
            if self.verbose:
                print(f"EarlyStopping: restored the weights of epoch {self.best_weights_epoch} "
                      f"({self.monitor.name} = {self.best:.6g})")

    # --- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "wait": self.wait, "evaluated": self.evaluated, "best": self.best,
            "best_epoch": self.best_epoch, "stopped_epoch": self.stopped_epoch,
            "stopping_reason": self.stopping_reason,
            "checked_at": list(self._checked_at) if self._checked_at else None}
        if self.restore_best_weights and self.best_weights is not None:
            state["best_weights"] = self.best_weights
            state["best_weights_epoch"] = self.best_weights_epoch
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.wait = int(state["wait"])
        self.evaluated = int(state["evaluated"])
        self.best = float(state["best"])
        self.best_epoch = int(state["best_epoch"])
        self.stopped_epoch = int(state["stopped_epoch"])
        self.stopping_reason = str(state["stopping_reason"])
        self.best_weights = state.get("best_weights")
        self.best_weights_epoch = int(state.get("best_weights_epoch", self.best_epoch))
        checked = state.get("checked_at")  # absent from files written before it was
        self._checked_at = (int(checked[0]), int(checked[1])) if checked else None
        self._loaded = True
