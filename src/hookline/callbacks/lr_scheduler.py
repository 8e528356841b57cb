"""Learning-rate schedules: Keras' ``LearningRateScheduler``, a wrapper for any torch scheduler,
and two ready schedules (linear warmup + cosine decay, one-cycle)."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any, Literal

import torch

from hookline.callback import Callback
from hookline.callbacks.monitor import check_choice, chosen_optimizer, config_key, read_metric
from hookline.files.errors import CheckpointMismatchError

__all__ = ["LRSchedulerCallback", "LearningRateScheduler", "TorchScheduler", "WarmupCosine",
           "get_lr", "one_cycle", "set_lr", "warmup_cosine"]

_Plateau = torch.optim.lr_scheduler.ReduceLROnPlateau
_Scheduler = torch.optim.lr_scheduler.LRScheduler


def get_lr(group: dict[str, Any]) -> float:
    """A param group's learning rate as a float (it may be a tensor)."""
    return float(group["lr"])


def set_lr(group: dict[str, Any], value: float) -> None:
    """Set a param group's learning rate, in place when it is a tensor (capturable optimizers)."""
    if isinstance(group["lr"], torch.Tensor):
        group["lr"].fill_(value)
    else:
        group["lr"] = value


def _positional_arity(fn: Callable[..., Any]) -> int:
    """How many positional arguments ``fn`` accepts (2 when it takes *args or is opaque)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 2
    count = 0
    for parameter in parameters:
        if parameter.kind is parameter.VAR_POSITIONAL:
            return 2
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of every epoch from ``schedule(epoch, lr) -> lr``.

    Keras' semantics: ``epoch`` is 0-based (``trainer.epoch``), ``lr`` the current rate, and the
    returned rate is used for the whole epoch. A one-argument ``schedule(epoch)`` works too.
    As in Keras 3, the epoch's rate (the first group's) is put in the epoch's metrics as
    ``"learning_rate"`` at ``on_train_epoch_end``, so History, CSVLogger and the loggers get it.
    With several param groups the schedule is applied to each group's own rate. The rate lives
    in the optimizer, which a checkpoint saves; this callback only remembers the last epoch it
    set, so that a resume inside an epoch (``on_train_epoch_start`` fires again for it) does
    not apply ``schedule`` to that epoch twice (``lr * 0.9`` would become ``lr * 0.81``).

    Args:
        schedule: the function; it must return a finite number >= 0.
        verbose: print the rate each epoch.

    Example::

        def halve_every_10(epoch, lr):
            return lr * 0.5 if epoch and epoch % 10 == 0 else lr
        Trainer(..., callbacks=[LearningRateScheduler(halve_every_10)])
    """

    order = -60

    def __init__(self, schedule: Callable[..., float], verbose: int = 0, *,
                 optimizer: str | int | None = None) -> None:
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler(schedule={schedule!r}) must be callable: "
                            f"schedule(epoch, lr) -> new lr")
        self.schedule = schedule
        self.verbose = verbose
        self.optimizer_choice = optimizer  # which of several optimizers (None: the first)
        self._two_args = _positional_arity(schedule) >= 2
        self._applied_epoch: int | None = None  # the epoch whose rate is in the optimizer
        self._loaded = False

    @property
    def state_key(self) -> str:
        return config_key("LearningRateScheduler",
                          schedule=getattr(self.schedule, "__qualname__", repr(self.schedule)))

    def state_dict(self) -> dict[str, Any]:
        return {"applied_epoch": self._applied_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        applied = state.get("applied_epoch")
        self._applied_epoch = int(applied) if applied is not None else None
        self._loaded = True

    def on_train_start(self, trainer: Any) -> None:
        if not self._loaded:
            self._applied_epoch = None  # a new fit: every epoch is scheduled afresh
        self._loaded = False

    def _optimizer(self, trainer: Any) -> Any:
        return chosen_optimizer(trainer, self.optimizer_choice, type(self).__name__)

    def on_train_epoch_start(self, trainer: Any) -> None:
        epoch = trainer.epoch
        # A resume into this epoch restored the optimizer with the rate already set for it:
        # after some of its batches (resume_batch > 0), or before any (the checkpoint records
        # that this epoch was scheduled).
        if getattr(trainer, "resume_batch", 0) > 0 or epoch == self._applied_epoch:
            return
        for index, group in enumerate(self._optimizer(trainer).param_groups):
            lr = get_lr(group)
            new = self.schedule(epoch, lr) if self._two_args else self.schedule(epoch)
            if isinstance(new, torch.Tensor) and new.numel() == 1:
                new = float(new)
            if isinstance(new, bool) or not isinstance(new, (int, float)) or \
                    not math.isfinite(new) or new < 0:
                raise ValueError(f"LearningRateScheduler: schedule({epoch}, {lr}) returned "
                                 f"{new!r}; it must return a finite number >= 0")
            set_lr(group, float(new))
            if self.verbose:
                print(f"Epoch {epoch}: LearningRateScheduler set the learning rate of group "
                      f"{index} to {float(new):.6g}")
        self._applied_epoch = epoch

    def on_train_epoch_end(self, trainer: Any) -> None:
        trainer.metrics["learning_rate"] = get_lr(self._optimizer(trainer).param_groups[0])


class LRSchedulerCallback(Callback):
    """Drive any ``torch.optim.lr_scheduler`` from training events.

    Args:
        scheduler: a scheduler built on the trainer's optimizer, or a factory called at
            ``on_train_start`` as ``f(optimizer)`` or ``f(optimizer, total)``, where ``total``
            is how many times the scheduler will step in this run, ``max_steps`` counted
            (useful for one-cycle and cosine schedules; a resumed run gets the total of the run it continues, saved in
            the checkpoint, and a resume that would step it more often, with more epochs, is
            refused: such a schedule cannot be extended). A factory gives a fresh scheduler
            for every fit.
        interval: "step" (after every ``frequency`` optimizer steps, at ``on_params_update``)
            or "epoch" (after every ``frequency`` epochs, at ``on_fit_epoch_end``, after
            validation).
        frequency: how many intervals between scheduler steps.
        monitor: for ``ReduceLROnPlateau``-type schedulers, the metric passed to ``step``
            (default "val_loss"); they need ``interval="epoch"``.
        strict: a missing monitored metric raises (True) or warns and skips the step.

    ``TorchScheduler`` is the same class. The scheduler's state is saved with the callback's.

    Example::

        sched = LRSchedulerCallback(lambda opt: torch.optim.lr_scheduler.StepLR(opt, 5, 0.5))
        Trainer(..., callbacks=[sched])
    """

    order = 20

    def __init__(self, scheduler: Any, *, interval: str = "epoch", frequency: int = 1,
                 monitor: str | None = None, strict: bool = True,
                 optimizer: str | int | None = None) -> None:
        owner = "LRSchedulerCallback"
        self.optimizer_choice = optimizer  # which of several optimizers (None: the first)
        check_choice(owner, "interval", interval, ("step", "epoch"))
        if isinstance(frequency, bool) or not isinstance(frequency, int) or frequency < 1:
            raise ValueError(f"{owner}(frequency={frequency!r}) is not allowed; frequency must "
                             f"be an integer >= 1")
        if not isinstance(scheduler, (_Scheduler, _Plateau)) and not callable(scheduler):
            raise TypeError(f"{owner}(scheduler={scheduler!r}) must be a torch.optim."
                            f"lr_scheduler instance or a factory f(optimizer) -> scheduler")
        self.interval = interval
        self.frequency = frequency
        self.monitor = monitor
        self.strict = bool(strict)
        self._factory = None if isinstance(scheduler, (_Scheduler, _Plateau)) else scheduler
        self.scheduler: Any = None if self._factory is not None else scheduler
        if self.scheduler is not None:
            self._check_kind(self.scheduler)
        self.count = 0
        self._total: int | None = None  # the total the factory was given
        self._epochs: int | None = None  # the epochs of the run that total was built for
        self._pending: dict[str, Any] | None = None

    @property
    def state_key(self) -> str:
        # from the configuration only: a factory's scheduler exists from on_train_start, but
        # a resume looks the state up by this key before that
        kind = getattr(self._factory, "__qualname__", "factory") if self._factory is not None \
            else type(self.scheduler).__name__
        return config_key("LRSchedulerCallback", scheduler=kind, interval=self.interval,
                          frequency=self.frequency)

    def _check_kind(self, scheduler: Any) -> None:
        if isinstance(scheduler, _Plateau) and self.interval != "epoch":
            raise ValueError("LRSchedulerCallback(interval='step') cannot drive "
                             "ReduceLROnPlateau: it needs a metric, which exists once per "
                             "epoch; use interval='epoch'")
        if not isinstance(scheduler, (_Scheduler, _Plateau)):
            raise TypeError(f"the scheduler factory returned {type(scheduler).__name__}, "
                            f"expected a torch.optim.lr_scheduler scheduler")

    def _optimizer(self, trainer: Any) -> Any:
        return chosen_optimizer(trainer, self.optimizer_choice, type(self).__name__)

    def hookline_handlers(self) -> dict[str, Callable[[Any], None]]:
        handlers: dict[str, Callable[[Any], None]] = {"on_train_start": self.on_train_start}
        if self.interval == "step":
            handlers["on_params_update"] = self.on_params_update
        else:
            handlers["on_fit_epoch_end"] = self.on_fit_epoch_end
        return handlers

    def on_train_start(self, trainer: Any) -> None:
        if self._factory is not None:
            build = self._factory
            # building a scheduler sets the rate of its step 0; a resume restored the optimizer
            # with the rate of the step it continues, which is put back after the build
            restored = [get_lr(group) for group in self._optimizer(trainer).param_groups]
            if _positional_arity(build) >= 2:
                # a resumed run rebuilds the schedule of the run it continues, not of its rest
                saved = (self._pending or {}).get("total")
                self._total = int(saved) if saved is not None else self.total(trainer)
                epochs = (self._pending or {}).get("epochs") if saved is not None else \
                    trainer.epochs
                self._epochs = int(epochs) if epochs is not None else None
                scheduler = build(self._optimizer(trainer), self._total)
            else:
                scheduler = build(self._optimizer(trainer))
            self._check_kind(scheduler)
            self.scheduler = scheduler
        elif self.scheduler.optimizer is not self._optimizer(trainer):
            raise ValueError("LRSchedulerCallback: the scheduler was built on a different "
                             "optimizer than the trainer's; build it on trainer.optimizer or "
                             "pass a factory, e.g. lambda optimizer: StepLR(optimizer, 10)")
        if self._pending is not None:
            self.scheduler.load_state_dict(self._pending["scheduler"])
            self.count = int(self._pending["count"])
            self._pending = None
            if self._factory is not None:
                for group, lr in zip(self._optimizer(trainer).param_groups, restored):
                    set_lr(group, lr)
        else:
            self.count = 0

    def total(self, trainer: Any) -> int:
        """How many times this callback will step the scheduler in the remaining run."""
        return self._steps(trainer, max(trainer.epochs - trainer.start_epoch, 0))

    def _steps(self, trainer: Any, epochs: int) -> int:
        """How many times this callback steps the scheduler in ``epochs`` epochs, or fewer
        when the Trainer's ``max_steps`` ends the run first (Lightning's
        ``estimated_stepping_batches`` takes the smaller too)."""
        batches = trainer.batches_per_epoch
        per_epoch = None if batches is None else math.ceil(batches / trainer.args.accumulate)
        max_steps = trainer.schedule.max_steps
        left = None if max_steps is None else max(max_steps - trainer.step, 0)
        if self.interval == "epoch":
            if left is not None and per_epoch:  # the epochs max_steps lets begin
                epochs = min(epochs, math.ceil(left / per_epoch))
            return max(epochs // self.frequency, 1)
        if per_epoch is None:
            if left is None:
                raise ValueError("LRSchedulerCallback: the number of steps in this run is "
                                 "unknown (train_data has no length); pass the total to your "
                                 "schedule yourself, or set the Trainer's steps_per_epoch= or "
                                 "max_steps=")
            steps = left
        else:
            steps = per_epoch * epochs if left is None else min(per_epoch * epochs, left)
        return max(steps // self.frequency, 1)

    def on_params_update(self, trainer: Any) -> None:
        if self.optimizer_choice is not None and \
                self._optimizer(trainer) is not trainer.optimizers.get(trainer.optimizer_name):
            return  # another optimizer's step (several optimizers)
        self.count += 1
        if self.count % self.frequency == 0:
            self.scheduler.step()

    def on_fit_epoch_end(self, trainer: Any) -> None:
        self.count += 1
        if self.count % self.frequency:
            return
        if isinstance(self.scheduler, _Plateau):
            value = read_metric(trainer, self.monitor or "val_loss",
                                owner="LRSchedulerCallback", strict=self.strict)
            if value is not None:
                self.scheduler.step(value)
        else:
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        if self.scheduler is None:
            return dict(self._pending) if self._pending else {}
        return {"scheduler": self.scheduler.state_dict(), "count": self.count,
                "total": self._total, "epochs": self._epochs}

    def check_state_dict(self, state: dict[str, Any], trainer: Any) -> None:
        """A schedule built for the total of the run it continues cannot be stretched over a
        longer run: OneCycleLR fails past its last step, a cosine decay holds its final rate
        for every added step. Refused before anything of the resume is loaded."""
        saved = state.get("total")
        if saved is None or self._factory is None or _positional_arity(self._factory) < 2:
            return
        try:  # the whole run's total, as the factory would get it for a fresh run
            now = self._steps(trainer, max(trainer.epochs - trainer.args.initial_epoch, 0))
        except ValueError:
            return  # no length to count (the run it continues had one)
        if now <= int(saved):
            return
        epochs = state.get("epochs")
        original = f"epochs={epochs}" if epochs is not None else "the epochs it was saved with"
        raise CheckpointMismatchError(
            None, f"LRSchedulerCallback({self._factory.__qualname__}) was built for {saved} "
                  f"scheduler steps, the length of the run it continues, and this run "
                  f"(epochs={trainer.epochs}) would step it {now} times: a schedule built for "
                  f"a total cannot be extended (past its end OneCycleLR fails and a cosine "
                  f"decay stays at its final rate). Nothing was loaded; resume with "
                  f"{original} to finish that schedule, or start a new schedule from its "
                  f"weights: model.load_state_dict(hookline.checkpoint.load_weights(path)"
                  f"['model']), then fit the added epochs without resume=")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # Applied at on_train_start, once the scheduler exists and is checked.
        self._pending = dict(state)


TorchScheduler = LRSchedulerCallback


class WarmupCosine:
    """The factor of the base lr at scheduler step ``t``: linear warmup to 1 over ``warmup``
    steps, then a cosine decay to ``min_lr_factor`` at ``total``. A class (not a lambda) so
    torch's ``LambdaLR`` saves its settings in the scheduler's state."""

    def __init__(self, warmup: int, total: int, min_lr_factor: float = 0.0) -> None:
        self.warmup, self.total, self.min_lr_factor = warmup, total, min_lr_factor

    def __call__(self, t: int) -> float:
        if t < self.warmup:
            return (t + 1) / self.warmup
        progress = min((t - self.warmup) / max(self.total - self.warmup, 1), 1.0)
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.min_lr_factor + (1.0 - self.min_lr_factor) * cosine


def warmup_cosine(warmup: int, total: int | None = None, *, min_lr_factor: float = 0.0,
                  interval: str = "step") -> LRSchedulerCallback:
    """Linear warmup over ``warmup`` intervals, then cosine decay to ``min_lr_factor`` times the
    base lr at ``total`` (default: the end of the run). Intervals are optimizer steps or epochs.

    Example::

        Trainer(..., lr=3e-4, callbacks=[warmup_cosine(warmup=100)])
    """
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup_cosine(warmup={warmup!r}) is not allowed; warmup must be an "
                         f"integer >= 0")
    if total is not None and (not isinstance(total, int) or total <= warmup):
        raise ValueError(f"warmup_cosine(total={total!r}) is not allowed; total must be an "
                         f"integer > warmup ({warmup})")
    if not 0.0 <= min_lr_factor <= 1.0:
        raise ValueError(f"warmup_cosine(min_lr_factor={min_lr_factor!r}) is not allowed; it "
                         f"must be between 0 and 1 (a fraction of the base lr)")

    def build(optimizer: torch.optim.Optimizer, run_total: int) -> Any:
        steps = total if total is not None else max(run_total, warmup + 1)
        return torch.optim.lr_scheduler.LambdaLR(optimizer,
                                                 WarmupCosine(warmup, steps, min_lr_factor))

    return LRSchedulerCallback(_factory(build, total, f"warmup_cosine(warmup={warmup}, "
                                                      f"total={total})"), interval=interval)


def one_cycle(max_lr: float | list[float] | None = None, total: int | None = None, *,
              pct_start: float = 0.3, div_factor: float = 25.0,
              final_div_factor: float = 1e4,
              anneal_strategy: Literal["cos", "linear"] = "cos",
              cycle_momentum: bool = True) -> LRSchedulerCallback:
    """The one-cycle policy (torch's ``OneCycleLR``) stepped every optimizer step, over the
    whole run unless ``total`` is given. ``max_lr`` defaults to each group's current lr.

    Example::

        Trainer(..., optimizer="sgd", lr=0.1, callbacks=[one_cycle()])
    """
    if not 0.0 < pct_start < 1.0:
        raise ValueError(f"one_cycle(pct_start={pct_start!r}) is not allowed; it must be "
                         f"between 0 and 1 (the fraction of the cycle spent increasing)")

    def build(optimizer: torch.optim.Optimizer, run_total: int) -> Any:
        # A second fit finds the previous cycle's end rate in "lr"; its peak is in "max_lr".
        peak = max_lr if max_lr is not None else [float(g.get("max_lr", get_lr(g)))
                                                  for g in optimizer.param_groups]
        momentum = cycle_momentum and any("momentum" in g or "betas" in g
                                          for g in optimizer.param_groups)
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=peak, total_steps=total or run_total, pct_start=pct_start,
            div_factor=div_factor, final_div_factor=final_div_factor,
            anneal_strategy=anneal_strategy, cycle_momentum=momentum)

    return LRSchedulerCallback(_factory(build, total, f"one_cycle(max_lr={max_lr}, "
                                                      f"total={total})"), interval="step")


def _factory(build: Callable[[Any, int], Any], total: int | None,
             name: str) -> Callable[..., Any]:
    """``build`` as the callback's factory, named ``name`` (its state key). With a ``total``
    of its own the schedule does not depend on the run's length: it takes the optimizer only,
    so a resume may extend the run (the run's total is refused only for a longer run)."""
    factory: Callable[..., Any] = build
    if total is not None:
        def factory(optimizer: torch.optim.Optimizer) -> Any:
            return build(optimizer, total)
    factory.__qualname__ = name
    return factory
