"""The run state a checkpoint holds: one typed record, read from and put back on a Trainer here.

Everything that says *where* a fit is (epoch, optimizer steps, batches done in the epoch, the
epoch's losses so far, fitness, stop flags, the run's id and the arguments a rerun must agree
with) is a field of :class:`RunState`. ``Trainer.state_dict()`` captures it and
``Trainer.load_state_dict()`` puts it back; nothing else reads or writes these attributes for a
checkpoint. A field that a file lacks, or one it has that this version does not know (a
rename), is an error naming the field: a silent default would resume the wrong run. The one
exception is a field added since (``ADDED_LATER``): a file written before it lacks it and
recorded nothing there, so it reads as None.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from typing import Any

import torch

from hookline.files.errors import CorruptCheckpointError
from hookline.plain_number import as_python
from hookline.step_losses import stacked

__all__ = ["Phase", "RunArgs", "RunState", "optimizer_lr"]


class Phase(str, Enum):
    """Where a fit is; compares equal to its string (``trainer.phase == "train"``)."""

    IDLE = "idle"  # no fit running (or a failed one: no resume point)
    SETUP = "setup"  # fit started, the first epoch not yet
    TRAIN = "train"  # in an epoch's batches
    EPOCH_END = "epoch_end"  # the batches are done, until on_fit_epoch_end
    EPOCH_DONE = "epoch_done"  # from on_fit_epoch_end: the whole epoch is done
    DONE = "done"  # fit returned

    def __str__(self) -> str:
        return self.value


@dataclass
class RunArgs:
    """The arguments a rerun must agree with to continue the run (``hookline.resume``)."""

    seed: int | None
    seeded: bool
    accumulate: int
    steps_per_epoch: int | None
    world_size: int
    # Trainer(lr=) when an optimizer was built from its name with it; None when the user
    # built every optimizer (lr= then set no rate) or in a file written before it was kept
    lr: float | None


def optimizer_lr(trainer: Any) -> float | None:
    """The rate ``Trainer(lr=)`` gave the optimizers it built by name; None when it built none
    (an optimizer instance or factory: lr= was not used)."""
    lr = trainer.args.lr
    if not trainer.optimizer_set.uses_lr or not isinstance(lr, numbers.Real):
        return None
    return float(lr)


# Fields added after the first checkpoints were written, with what a file lacking one
# recorded: nothing. Every other field a file lacks is an error (see RunState.from_dict).
ADDED_LATER: dict[str, Any] = {"epoch_data_rng": None, "data_rng": None}
ARGS_ADDED_LATER: dict[str, Any] = {"lr": None}


@dataclass
class RunState:
    """Where a fit is, as a checkpoint records it ("after the event being handled")."""

    epoch: int
    epochs: int
    phase: Phase
    batches_done: int
    step: int
    epoch_losses: torch.Tensor  # the epoch's per-step losses so far, stacked
    epoch_sizes: torch.Tensor  # each of those steps' batch size (the means weigh by it)
    loss_names: list[str]
    epoch_rng: torch.Tensor | None  # torch's RNG state the epoch's data order came from
    # the states of the train data's own generators (DataLoader(generator=...)) at the
    # epoch's start and when the state was taken; None in a file written before they were
    epoch_data_rng: list[torch.Tensor] | None
    data_rng: list[torch.Tensor] | None
    train_metrics: dict[str, Any] | None
    metrics: dict[str, Any]
    fitness: Any
    best_fitness: Any
    stop: bool
    stop_reason: str
    skip_rest_of_epoch: bool
    grads: dict[str, torch.Tensor]  # accumulated gradients not yet stepped
    exact: bool  # False: resuming will not be bitwise equal to an uninterrupted run
    note: str  # why not, shown on resume
    run_id: str
    rank: int  # the rank that wrote it (0 outside torchrun)
    args: RunArgs = field(repr=False)

    @classmethod
    def of(cls, trainer: Any, *, keep_grads: bool = True, exact: bool = True,
           note: str = "") -> RunState:
        """The run state of ``trainer`` now. Attributes are read directly: a renamed one is
        an AttributeError here, never a default written into every checkpoint."""
        losses = trainer.epoch_losses
        phase = Phase(trainer.phase)
        if phase is Phase.DONE:
            phase = Phase.EPOCH_DONE  # after fit: its last epoch was done
        grads = {}
        if keep_grads:
            grads = {name: parameter.grad for name, parameter in
                     trainer.model.named_parameters() if parameter.grad is not None}
        metric_set = trainer.train_metric_set
        args = trainer.args
        return cls(
            epoch=int(trainer.epoch), epochs=int(trainer.epochs), phase=phase,
            batches_done=len(losses), step=int(trainer.step),
            epoch_losses=stacked(losses) if losses else torch.empty(0),
            epoch_sizes=torch.tensor(trainer.epoch_sizes, dtype=torch.int64),
            loss_names=[str(name) for name in trainer.loss_names],
            epoch_rng=trainer.epoch_rng_state, epoch_data_rng=trainer.epoch_data_rng,
            data_rng=trainer.train_data.rng_states(),
            train_metrics=metric_set.state_dict() if metric_set is not None else None,
            metrics={str(key): _plain(value) for key, value in trainer.metrics.items()},
            fitness=_plain(trainer.fitness), best_fitness=_plain(trainer.best_fitness),
            stop=bool(trainer.stop), stop_reason=str(trainer.stop_reason or ""),
            skip_rest_of_epoch=bool(trainer.skip_rest_of_epoch), grads=grads,
            exact=bool(exact), note=str(note), run_id=str(trainer.run_id),
            rank=int(trainer.rank),
            args=RunArgs(seed=args.seed, seeded=bool(args.seeded), accumulate=args.accumulate,
                         steps_per_epoch=args.steps_per_epoch,
                         world_size=int(trainer.world_size), lr=optimizer_lr(trainer)))

    def to_dict(self) -> dict[str, Any]:
        """Plain values only (strings, numbers, tensors), so weights-only loading reads it."""
        data = {item.name: getattr(self, item.name) for item in fields(self)}
        data["phase"] = self.phase.value
        data["args"] = asdict(self.args)
        return data

    @classmethod
    def from_dict(cls, data: Any, source: Any = None) -> RunState:
        """The run state a checkpoint recorded; a missing (unless ``ADDED_LATER``) or unknown
        field is an error."""
        where = f"checkpoint {source}" if source is not None else "the checkpoint"
        if not isinstance(data, dict):
            raise CorruptCheckpointError(source, f"{where} has no run state (found "
                                                 f"{type(data).__name__})")
        values = {**ADDED_LATER, **data}
        args = values.get("args")
        values["args"] = _fields_of(RunArgs, {**ARGS_ADDED_LATER, **args} if isinstance(
            args, dict) else args, f"{where}'s run args", source)
        values = _fields_of(cls, values, f"{where}'s run state", source)
        try:
            values["phase"] = Phase(values["phase"])
        except ValueError:
            raise CorruptCheckpointError(
                source, f"{where} records an unknown phase {values['phase']!r}; known: "
                        f"{', '.join(phase.value for phase in Phase)}") from None
        values["args"] = RunArgs(**values["args"])
        losses, sizes = values["epoch_losses"], values["epoch_sizes"]
        if not (isinstance(losses, torch.Tensor) and isinstance(sizes, torch.Tensor)
                and sizes.dim() == 1 and len(sizes) == len(losses)):
            raise CorruptCheckpointError(
                source, f"{where}'s run state does not record one batch size per recorded "
                        f"step loss: it was altered since it was written; start a new run or "
                        f"resume from another checkpoint")
        return cls(**values)

    def apply(self, trainer: Any, start_epoch: int) -> None:
        """Put the counters, metrics and flags back on ``trainer`` (the components — model,
        optimizers, schedulers, callbacks — are ``hookline.resume``'s job)."""
        trainer.step = self.step
        trainer.metrics = dict(self.metrics)
        trainer.fitness, trainer.best_fitness = self.fitness, self.best_fitness
        trainer.stop_reason = self.stop_reason
        trainer.stop = self.stop if self.mid_epoch else False
        trainer.loss_names, trainer._loss_names_fixed = list(self.loss_names), True
        trainer.start_epoch = trainer.epoch = start_epoch
        trainer.resume_batch = self.batches_done if self.mid_epoch else 0
        trainer.run_id = self.run_id or trainer.run_id
        trainer.resumed = True

    @property
    def mid_epoch(self) -> bool:
        """Whether the recorded position is inside an epoch (its end not yet done)."""
        return self.phase in (Phase.TRAIN, Phase.EPOCH_END)

    def batches_complete(self, ends_epoch: Callable[..., bool]) -> bool:
        """Whether the recorded epoch's batches were all done (or stopped for good).
        ``ends_epoch`` is the resuming trainer's ``schedule.ends_epoch``: a stop that
        min_epochs or min_steps held back (or one waiting for the epoch's end on several
        ranks) left the run training the epoch on."""
        if self.phase is not Phase.TRAIN:
            return True
        return ends_epoch(self.epoch, self.step, stop=self.stop, skip=self.skip_rest_of_epoch,
                          alone=self.args.world_size == 1)

    def ended_by_stop(self, may_stop: Callable[[int, int], bool]) -> bool:
        """Whether a stop request (EarlyStopping, Timer, max_steps...) ended the run at the
        recorded epoch's end. ``may_stop(epochs_done, steps)`` is the resuming trainer's
        ``schedule.may_stop``: a stop that min_epochs or min_steps held back ended nothing."""
        return self.phase is Phase.EPOCH_DONE and self.stop and may_stop(self.epoch + 1,
                                                                         self.step)

    def start_epoch(self, epochs: int, may_stop: Callable[[int, int], bool]) -> int:
        """The epoch a resumed fit of ``epochs`` epochs starts (or continues) in.

        A run that a stop ended is finished: with ``epochs`` no larger than its own there is
        nothing left to train; with more it is extended from the epoch after the one it
        stopped at (never from its old ``epochs``, which would skip the epochs between)."""
        if self.phase is Phase.EPOCH_DONE:
            if self.ended_by_stop(may_stop) and epochs <= self.epochs:
                return max(epochs, self.epoch + 1)
            return self.epoch + 1
        return self.epoch  # before any training ("idle", "setup") or mid-epoch


def _fields_of(kind: Any, values: Any, what: str, source: Any) -> dict[str, Any]:
    names = [item.name for item in fields(kind)]
    if not isinstance(values, dict):
        raise CorruptCheckpointError(source, f"{what} is missing")
    missing = [name for name in names if name not in values]
    unknown = sorted(set(values) - set(names))
    if missing or unknown:
        problems = []
        if missing:
            problems.append(f"lacks {', '.join(missing)}")
        if unknown:
            problems.append(f"has fields this version does not know ({', '.join(unknown)})")
        raise CorruptCheckpointError(
            source, f"{what} {' and '.join(problems)}: it was written by another version of "
                    f"hookline or altered since; resume it with the version that wrote it, "
                    f"or start a new run")
    return {name: values[name] for name in names}


def _plain(value: Any) -> Any:
    """Numbers as Python numbers (a numpy float would need full unpickling)."""
    if isinstance(value, torch.Tensor):
        return value
    value = as_python(value)  # a numpy bool or 0-d array is no numbers.Real
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return value
