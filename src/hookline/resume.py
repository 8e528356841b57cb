"""Restoring a Trainer from a full checkpoint, kept out of the Trainer class.

``Trainer(resume=...)`` calls ``resume_trainer`` once set-up is done (model on its device, grad
scaler built) and before ``on_pretrain_routine_end``; ``resume`` may be:

* ``True``: the newest usable checkpoint under ``save_dir`` and the folders that checkpoint
  callbacks declare (their ``checkpoint_dir``); when there is none, a warning and a fresh start;
* a file: that checkpoint; a folder: the newest usable checkpoint in it;
* a payload dict (from ``load_checkpoint(path, trusted=True)``, the opt-in for files that need
  full unpickling);
* a list of files: the first that loads and applies (``BackupAndRestore`` passes the backups
  its ranks agreed on, best first).

A resume is exact: the run continues at the recorded position, mid-epoch included, with the
same remaining batches in the same order and the same random generators, so its final weights
are bitwise equal to an uninterrupted run's. When the newest checkpoint is corrupt, the previous
good one is used, with a warning.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hookline.checkpoint import (
    MAGIC,
    MODEL_MAGIC,
    CheckpointMismatchError,
    CorruptCheckpointError,
    check_model_state,
    load_checkpoint,
    read_checkpoint_info,
)
from hookline.files.checkpoint_format import wrapper_renames
from hookline.rng import set_rng_state
from hookline.run_state import Phase, RunState, optimizer_lr
from hookline.step_losses import restored
from hookline.user_warning import warn

__all__ = ["ResumePoint", "checkpoint_folders", "find_checkpoints", "load_latest", "restore",
           "resume_trainer"]

CHECKPOINT_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")


def resume_trainer(trainer: Any, resume: Any) -> Path | None:
    """Apply ``Trainer(resume=...)``; returns the checkpoint used (None when none was)."""
    if resume is None or resume is False:
        return None
    if isinstance(resume, dict):
        trainer.load_state_dict(resume)
        return None
    if isinstance(resume, (list, tuple)):  # files, best first (BackupAndRestore's choice)
        return _restore_first(trainer, [Path(path) for path in resume])
    if resume is True:
        folders = checkpoint_folders(trainer)
        used = _restore_latest(trainer, folders)
        if used is None:
            where = ", ".join(str(folder) for folder in folders) or (
                "nowhere: the Trainer has no save_dir and no callback declares a "
                "checkpoint_dir")
            warn(f"resume=True found no checkpoint (looked in {where}); training "
                 f"starts from scratch")
        return used
    if isinstance(resume, (str, os.PathLike)):
        path = Path(resume)
        if path.is_dir():
            used = _restore_latest(trainer, [path])
            if used is None:
                warn(f"resume={str(resume)!r}: no checkpoint in that folder yet; "
                     f"training starts from scratch")
            return used
        elif not path.exists():
            raise FileNotFoundError(
                f"resume={str(resume)!r}: no such file or folder. Pass a checkpoint file "
                f"written by BackupAndRestore, ModelCheckpoint or OnExceptionCheckpoint, a "
                f"folder of them, or resume=True for the newest one under save_dir")
        else:
            found = (path, load_checkpoint(path))
    else:
        raise TypeError(f"resume must be True, a path or a loaded checkpoint dict, got "
                        f"{type(resume).__name__}: {resume!r}")
    path, payload = found
    trainer.load_state_dict(payload, source=path)
    trainer.resumed_from = path
    return path


def _restore_latest(trainer: Any, folders: list[Path]) -> Path | None:
    """Restore the newest checkpoint under ``folders`` that loads and applies; a damaged one,
    or one whose state cannot be applied (an optimizer state cut short), is passed over with
    a warning. None when there is none; CorruptCheckpointError when none is usable."""
    return _restore_first(trainer, find_checkpoints(folders))


def _restore_first(trainer: Any, candidates: list[Path]) -> Path | None:
    """Restore the first of ``candidates`` that loads and applies (see _restore_latest)."""
    problems = []
    for path in candidates:
        try:
            trainer.load_state_dict(load_checkpoint(path), source=path)
        except CorruptCheckpointError as error:
            problems.append(str(error))
            warn(f"{error}; falling back to the previous checkpoint")
            continue
        trainer.resumed_from = path
        return path
    if problems:
        raise CorruptCheckpointError(None, "no usable checkpoint to resume from: "
                                     + "; ".join(problems))
    return None


def checkpoint_folders(trainer: Any) -> list[Path]:
    """Where ``resume=True`` looks: save_dir, then each callback's ``checkpoint_dir``."""
    folders: list[Path] = []
    if trainer.save_dir is not None:
        folders.append(Path(trainer.save_dir))
    for callback in trainer.callbacks:
        folder = getattr(callback, "checkpoint_dir", None)
        if isinstance(folder, (str, os.PathLike)):
            folders.append(Path(folder))
    unique: list[Path] = []
    for folder in folders:
        if folder not in unique:
            unique.append(folder)
    return unique


def find_checkpoints(folders: Iterable[str | os.PathLike]) -> list[Path]:
    """Full checkpoints under ``folders`` (recursively), newest first.

    Files are recognised by their header, not their name (among .ckpt/.pt/.pth/.bin files);
    plain torch.save weights files are left out. A file whose header cannot be read is kept
    (ordered by its modification time) so that loading it reports why it is unusable.
    """
    found: dict[Path, int] = {}
    for folder in folders:
        root = Path(folder)
        if not root.is_dir():
            continue
        for directory, subfolders, files in os.walk(root):
            subfolders[:] = [name for name in subfolders if not name.startswith(".")]
            for name in files:
                if name.startswith(".") or not name.endswith(CHECKPOINT_SUFFIXES):
                    continue
                path = Path(directory) / name
                order = _newness(path)
                if order is not None:
                    found[path] = order
    return sorted(found, key=lambda path: found[path], reverse=True)


def _newness(path: Path) -> int | None:
    try:
        with open(path, "rb") as file:
            start = file.read(len(MAGIC))
        mtime = path.stat().st_mtime_ns
    except OSError:
        return None
    if start.startswith((b"PK\x03\x04", MODEL_MAGIC)):
        return None  # a torch.save weights file or a Model.save file: not resumable
    if start != MAGIC:
        return mtime
    try:
        created = read_checkpoint_info(path).get("created_ns")
    except Exception:  # noqa: BLE001 - unreadable: ordered by mtime, reported when loaded
        return mtime
    return created if isinstance(created, int) else mtime


def load_latest(folders: Iterable[str | os.PathLike], *,
                trusted: bool = False) -> tuple[Path, dict[str, Any]] | None:
    """The newest usable checkpoint under ``folders`` and its payload, or None if there is
    none. A corrupt one is skipped with a warning naming it and the reason (the previous
    good one is used); when every one is corrupt, CorruptCheckpointError lists them."""
    candidates = find_checkpoints(folders)
    problems = []
    for path in candidates:
        try:
            payload = load_checkpoint(path, trusted=trusted)
        except CorruptCheckpointError as error:
            problems.append(str(error))
            warn(f"{error}; falling back to the previous checkpoint")
            continue
        return path, payload
    if problems:
        raise CorruptCheckpointError(None, "no usable checkpoint to resume from: "
                                     + "; ".join(problems))
    return None


# --- applying a payload -------------------------------------------------------------------
def restore(trainer: Any, payload: dict[str, Any], *, source: Any = None) -> None:
    """Put ``trainer`` in the state ``payload`` (from ``build_checkpoint``) recorded.

    Call it after set-up (model on its device, grad scaler built) and before
    ``on_train_start``; the epoch loop then continues at the recorded position. Every check
    runs before anything is loaded: a state that does not fit leaves the trainer untouched.
    """
    checked = _check(trainer, payload, source)
    _apply(trainer, payload, checked)


@dataclass
class _Checked:
    """What ``_check`` found fits, ready to be applied."""

    name: str
    source: Any
    run: RunState
    model_state: dict[str, Any]
    optimizer_states: list[tuple[Any, Any, dict[str, Any]]]  # (key, optimizer, its state)
    scheduler_states: list[Any]
    start_epoch: int
    ended_by_stop: bool


def _check(trainer: Any, payload: dict[str, Any], source: Any) -> _Checked:
    """Every check that can refuse ``payload``; nothing of the trainer is changed."""
    name = f"checkpoint {source}" if source is not None else "the checkpoint"
    run = RunState.from_dict(payload.get("run"), source)
    model_state = check_model_state(trainer.model, payload["model"], source)
    other_world = _world_size_change(trainer, run, name, source)
    _check_data(trainer, payload.get("data") or {}, name, source, other_world=other_world)
    _check_generators(trainer, run, name, source)
    ended_by_stop = run.ended_by_stop(trainer.schedule.may_stop)
    start_epoch = run.start_epoch(trainer.epochs, trainer.schedule.may_stop)
    _check_rerun(trainer, run, start_epoch, ended_by_stop, name, source)
    optimizer_states = _check_optimizers(trainer, payload, name, source)
    scheduler_states = _check_schedulers(trainer, payload.get("lr_schedulers") or [], name,
                                         source)
    _check_callbacks(trainer, payload.get("callbacks") or {}, name, source)
    return _Checked(name, source, run, model_state, optimizer_states, scheduler_states,
                    start_epoch, ended_by_stop)


def _apply(trainer: Any, payload: dict[str, Any], checked: _Checked) -> None:
    """Load what ``_check`` accepted: components, callbacks, counters, random generators."""
    name, run, start_epoch = checked.name, checked.run, checked.start_epoch
    states = payload.get("callbacks") or {}
    _load_callbacks(trainer, states, name, checked.source)  # first: a refusal loads nothing else
    _adopt_data_seed(trainer, payload.get("data") or {})
    trainer.model.load_state_dict(checked.model_state)
    _load_optimizers(checked.optimizer_states, name, checked.source)
    for scheduler, state in zip(getattr(trainer, "lr_schedulers", ()),
                                checked.scheduler_states, strict=True):
        scheduler.load_state_dict(state)
    _restore_scaler(trainer, payload.get("scaler"), name)
    # pending gradients are keyed as the model's state was (a wrapper's prefix included)
    grads = {renames.get(key, key): grad for key, grad in run.grads.items()} if (
        renames := wrapper_renames(trainer.model.state_dict(), payload["model"])) else run.grads
    for parameter_name, parameter in trainer.model.named_parameters():
        grad = grads.get(parameter_name)
        parameter.grad = grad.to(parameter.device) if grad is not None else None
    trainer.callbacks.load_filter_counts(payload.get("filters") or {})
    unclaimed = set(states) - {key for key, _ in trainer.callbacks.keyed()}
    if unclaimed:
        warn(f"{name} holds state for callbacks this run does not have "
             f"({', '.join(sorted(unclaimed))}); it is ignored")
    if payload.get("input_signature") is not None:  # export after a resume needs no example
        trainer.input_signature = payload["input_signature"]
    if not run.exact:
        warn(f"{name} is not an exact resume point: {run.note}")
    run.apply(trainer, start_epoch)
    if checked.ended_by_stop and start_epoch < trainer.epochs:
        trainer.stop_reason = ""  # extended past its stop: this fit has not been stopped
    trainer._resume_point = None
    if run.mid_epoch:
        # mid-epoch: the rest of the epoch is positioned when it starts
        trainer._resume_point = ResumePoint(
            batches_done=run.batches_done,
            batches_complete=run.batches_complete(trainer.schedule.ends_epoch),
            losses=run.epoch_losses, sizes=run.epoch_sizes, train_metrics=run.train_metrics,
            rng=payload["rng"], epoch_rng=run.epoch_rng, epoch_data_rng=run.epoch_data_rng)
    if start_epoch >= trainer.epochs and checked.ended_by_stop:
        warn(f"{name}: that run was stopped after epoch {run.epoch} "
             f"({run.stop_reason or 'a stop request'}); there is nothing left to train. Pass "
             f"epochs= larger than {run.epochs} to continue it from epoch {run.epoch + 1}")
    elif start_epoch >= trainer.epochs:
        warn(f"{name}: that run already finished ({trainer.epochs} epochs); there is "
             f"nothing left to train. Pass a larger epochs= to extend it")
    set_rng_state(payload["rng"])
    if run.data_rng is not None:  # the next epoch draws from them as they were
        trainer.train_data.set_rng_states(run.data_rng)


def _check_rerun(trainer: Any, run: RunState, start_epoch: int, ended_by_stop: bool,
                 name: str, source: Any) -> None:
    """A rerun must agree with the run it continues: every conflict is an error naming the
    argument and both values, raised before anything is restored, trained, saved or
    deleted."""
    saved, now = run.args, trainer.args
    conflicts = []
    if saved.seeded and now.seeded and saved.seed != now.seed:
        conflicts.append(f"seed={now.seed} but the checkpoint's run used seed="
                         f"{saved.seed} (another run's checkpoint in the same folder?)")
    for key in ("accumulate", "steps_per_epoch"):
        if getattr(saved, key) != getattr(now, key):
            conflicts.append(f"{key}={getattr(now, key)!r} but the checkpoint's run used "
                             f"{key}={getattr(saved, key)!r}")
    lr = optimizer_lr(trainer)
    if saved.lr is not None and lr is not None and lr != saved.lr:
        conflicts.append(f"lr={lr!r} but the checkpoint's run used lr={saved.lr!r} (a resume "
                         f"restores the optimizer's state, its rate included; resume without "
                         f"changing lr, or start a new run from the weights)")
    finished = (run.stop if run.mid_epoch else ended_by_stop) or (
        run.phase is Phase.EPOCH_DONE and run.epoch + 1 >= run.epochs)
    if start_epoch >= trainer.epochs and not finished:
        done = run.epoch + (1 if run.phase is Phase.EPOCH_DONE else 0)
        conflicts.append(f"epochs={trainer.epochs} but the checkpoint's run had trained {done} "
                         f"of its {run.epochs} epochs; pass epochs={run.epochs} (or "
                         f"more) to finish it")
    if conflicts:
        raise CheckpointMismatchError(
            source, f"{name} does not fit this run: " + "; ".join(conflicts) + ". Nothing was "
                    "trained or deleted; fix the arguments, or start a new run in another "
                    "folder")


def _world_size_change(trainer: Any, run: RunState, name: str, source: Any) -> bool:
    """Whether the checkpoint was saved with another number of ranks. That is allowed at an
    epoch boundary: every rank takes the saved run's state (rank 0's, as BackupAndRestore
    picks it), one warning says the rest of the run is not bitwise equal to an uninterrupted
    one. A mid-epoch checkpoint is refused: its batches, losses and metric states are one
    rank's share of an epoch sharded over the old number of ranks."""
    saved, now = run.args.world_size, int(trainer.world_size)
    if saved == now:
        return False
    if run.mid_epoch:
        raise CheckpointMismatchError(
            source, f"{name} was saved in the middle of epoch {run.epoch} (after "
                    f"{run.batches_done} batches) by a run with {saved} rank(s), and this "
                    f"run has {now}: a run continues on another number of ranks only from "
                    f"an epoch boundary. Resume it with {saved} rank(s) (torchrun "
                    f"--nproc_per_node={saved}, or one process for 1), or back up with "
                    f"BackupAndRestore(save_freq=\"epoch\") so that every backup is an epoch "
                    f"boundary. Nothing was trained or deleted")
    if int(trainer.rank) == 0:  # once per run, not once per rank
        done = run.epoch + 1 if run.phase is Phase.EPOCH_DONE else run.epoch
        warn(f"{name} was saved by a run with {saved} rank(s) and this run has {now}: "
             f"every rank continues from rank 0's state after {done} epoch(s) "
             f"(weights, optimizers, schedulers, callbacks, counters and random "
             f"generators) and the data is sharded over {now} rank(s) from here, so "
             f"the rest of the run is not bitwise equal to an uninterrupted "
             f"{saved}-rank run")
    return True


def _check_data(trainer: Any, saved: dict[str, Any], name: str, source: Any, *,
                other_world: bool = False) -> None:
    """The data must be what the order was drawn from; after a change of world size the
    sharding follows the new one (a DataLoader's sampler too: its length may change)."""
    data = trainer.train_data
    if saved.get("kind") == "arrays" and hasattr(data, "tensors"):
        now = {"size": data.size, "batch_size": data.batch_size, "shuffle": data.shuffle,
               "drop_last": data.drop_last, "world": getattr(data, "world", 1)}
        if other_world:
            del now["world"]
        changed = [f"{key} {saved.get(key, 1)} then, {value} now" for key, value in now.items()
                   if saved.get(key, 1 if key == "world" else None) != value]
        if changed:
            raise CheckpointMismatchError(
                source, f"{name}: train_data is not what it was ({'; '.join(changed)}); an "
                        f"exact resume needs the same data and batch_size")
    elif saved.get("kind") == "iterable" and saved.get("batches") is not None and \
            not other_world:
        try:
            length = len(data)
        except TypeError:
            return
        if length != saved["batches"]:
            raise CheckpointMismatchError(
                source, f"{name}: train_data has {length} batches per epoch but had "
                        f"{saved['batches']}; an exact resume needs the same data")


def _check_generators(trainer: Any, run: RunState, name: str, source: Any) -> None:
    """The train data's own generators (``DataLoader(generator=...)``) are put back one for
    one: another number of them is another loader, whose order the checkpoint cannot
    replay."""
    if run.data_rng is None:  # written before they were recorded
        return
    now = len(trainer.train_data.rng_states())
    if now != len(run.data_rng):
        raise CheckpointMismatchError(
            source, f"{name}: train_data shuffles with {len(run.data_rng)} generator(s) of its "
                    f"own (DataLoader(generator=...) or its sampler's) in the checkpoint's run "
                    f"and with {now} now; an exact resume needs the same DataLoader: build it "
                    f"with the same generator= and sampler")


def _adopt_data_seed(trainer: Any, saved: dict[str, Any]) -> None:
    """An unseeded Trainer draws a new seed per process: the order of arrays must follow the
    saved one (a seeded one must match it: _check_rerun says so when it does not)."""
    data = trainer.train_data
    if saved.get("kind") == "arrays" and hasattr(data, "tensors") and not trainer.args.seeded:
        data.seed = saved["seed"]
        trainer.args.seed = saved["seed"]


def _check_optimizers(trainer: Any, payload: dict[str, Any], name: str,
                      source: Any) -> list[tuple[Any, Any, dict[str, Any]]]:
    """The optimizer's state, or every optimizer's by name when the run had several, checked
    against this trainer's optimizers: ``(key, optimizer, state)`` for each."""
    current = getattr(trainer, "optimizers", None) or {"optimizer": trainer.optimizer}
    saved = payload.get("optimizers") or {next(iter(current)): payload["optimizer"]}
    if list(saved) != list(current):
        raise CheckpointMismatchError(
            source, f"{name} holds the optimizers {list(saved)} but this trainer has "
                    f"{list(current)}; resume with the optimizers it was saved with")
    _check_optimizer_classes(list(current.items()), payload.get("optimizer_classes"), name,
                             source)
    for key, state in saved.items():
        _check_optimizer_state(key, current[key], state, name, source)
    return [(key, current[key], state) for key, state in saved.items()]


def _check_optimizer_classes(current: list[tuple[str, Any]], saved: Any, name: str,
                             source: Any) -> None:
    """Another optimizer class reads hyperparameters and per-parameter entries the saved
    state lacks (SGD's momentum from an Adam state): refused here, not by torch's KeyError
    at the first step. Checkpoints written before the class was recorded are not checked."""
    if not isinstance(saved, list) or len(saved) != len(current):
        return
    for (key, optimizer), saved_class in zip(current, saved, strict=True):
        now = type(optimizer).__qualname__
        if saved_class != now:
            raise CheckpointMismatchError(
                source, f"{name} was saved with optimizer class {saved_class}, and optimizer "
                        f"{key!r} of this run is of class {now}: an optimizer's state cannot "
                        f"continue in another class. Nothing was loaded; resume with the "
                        f"{saved_class} optimizer it was saved with, or load only the weights "
                        f"(model.load_state_dict(hookline.checkpoint.load_weights(path)"
                        f"['model'])) and fit without resume= to train on with {now}")


def _check_optimizer_state(key: str, optimizer: Any, state: Any, name: str,
                           source: Any) -> None:
    """What torch's ``load_state_dict`` would refuse, and a state taken mid-step, refused
    before anything is loaded."""
    try:
        saved_sizes = [len(group["params"]) for group in state["param_groups"]]
        entries = {frozenset(entry) for entry in state["state"].values() if entry}
    except KeyError as error:  # the state itself is cut short: a damaged checkpoint
        raise CorruptCheckpointError(
            source, f"{name}: the state of optimizer {key!r} is incomplete (missing "
                    f"{error}); it cannot be resumed") from None
    except (TypeError, AttributeError):
        raise CorruptCheckpointError(
            source, f"{name}: the state of optimizer {key!r} is not an optimizer's "
                    f"state_dict; it cannot be resumed") from None
    sizes = [len(group["params"]) for group in optimizer.param_groups]
    if saved_sizes != sizes:
        raise CheckpointMismatchError(
            source, f"{name}: the state of optimizer {key!r} does not fit it (it has "
                    f"{len(saved_sizes)} parameter group(s) of {saved_sizes} parameters, this "
                    f"run's optimizer {len(sizes)} of {sizes}); resume with the optimizer and "
                    f"parameter groups it was saved with. Nothing was loaded")
    if len(entries) > 1:  # some parameters were stepped, others not: taken mid-step
        raise CorruptCheckpointError(
            source, f"{name}: the state of optimizer {key!r} is incomplete (its parameters "
                    f"hold different entries: {sorted(sorted(e) for e in entries)}); it "
                    f"was taken during an optimizer step and cannot be resumed")


def _load_optimizers(states: list[tuple[Any, Any, dict[str, Any]]], name: str,
                     source: Any) -> None:
    """Load the checked states; torch's own refusals stay errors naming the optimizer (its
    load-state hooks may refuse what the checks could not see)."""
    for key, optimizer, state in states:
        try:
            optimizer.load_state_dict(state)
        except KeyError as error:
            raise CorruptCheckpointError(
                source, f"{name}: the state of optimizer {key!r} is incomplete (missing "
                        f"{error}); it cannot be resumed") from None
        except ValueError as error:
            raise CheckpointMismatchError(
                source, f"{name}: the state of optimizer {key!r} does not fit it ({error}); "
                        f"resume with the optimizer and parameter groups it was saved "
                        f"with") from None


def _check_schedulers(trainer: Any, states: list[Any], name: str, source: Any) -> list[Any]:
    schedulers = list(getattr(trainer, "lr_schedulers", ()))
    if len(schedulers) != len(states):
        raise CheckpointMismatchError(
            source, f"{name} holds {len(states)} LR scheduler state(s) but "
                    f"trainer.lr_schedulers has {len(schedulers)}; register the same "
                    f"schedulers before resuming")
    return states


def _check_callbacks(trainer: Any, states: dict[str, Any], name: str, source: Any) -> None:
    """A callback's refusal (``check_state_dict``), naming the checkpoint."""
    try:
        trainer.callbacks.check_states(states, trainer)
    except CheckpointMismatchError as error:
        raise CheckpointMismatchError(source, f"{name}: {error}") from None


def _load_callbacks(trainer: Any, states: dict[str, Any], name: str, source: Any) -> None:
    """Give each callback its saved state; one whose ``load_state_dict`` fails (a state
    written by an older version of it) is an error naming it, raised before the model,
    the optimizers or the counters are loaded."""
    for key, owner in trainer.callbacks.keyed():
        if key not in states:
            continue
        try:
            owner.load_state_dict(states[key])
        except Exception as error:
            raise CheckpointMismatchError(
                source, f"{name}: callback {key} could not load the state it saved "
                        f"({type(error).__name__}: {error}); the model, optimizers and "
                        f"counters were not loaded. Make its load_state_dict read that state "
                        f"(or check_state_dict refuse it), or resume without that "
                        f"callback") from error


def _restore_scaler(trainer: Any, state: dict[str, Any] | None, name: str) -> None:
    scaler = getattr(trainer, "scaler", None)
    if state is not None and scaler is not None:
        scaler.load_state_dict(state)
    elif state is not None or scaler is not None:
        warn(f"{name} was saved with{'out' if state is None else ''} a grad scaler "
             f"(fp16) but this run uses {'one' if scaler is not None else 'none'}; "
             f"the scaler starts fresh")


@dataclass
class ResumePoint:
    """The part of a resume applied when its epoch starts: the epoch's losses so far, the
    running train metrics, and the data stream positioned after the batches already done
    with every random generator as it was at that point."""

    batches_done: int
    batches_complete: bool
    losses: torch.Tensor
    sizes: torch.Tensor  # the batch size of each of those losses' steps
    train_metrics: dict[str, Any] | None
    rng: dict[str, Any]
    epoch_rng: torch.Tensor | None
    epoch_data_rng: list[torch.Tensor] | None  # train_data's own generators' (None: older file)

    def continue_epoch(self, trainer: Any, epoch: int) -> Iterator[Any] | None:
        """The remaining batches of ``epoch`` (None when its batches were all done)."""
        trainer.epoch_losses.extend(restored(self.losses, trainer.device))
        trainer.epoch_sizes.extend(int(size) for size in self.sizes.tolist())
        _load_metric_set(trainer.train_metric_set, self.train_metrics, trainer.device)
        epoch_rng = self.epoch_rng if self.epoch_rng is not None else self.rng["torch"]
        trainer.epoch_rng_state = epoch_rng
        data, skip = trainer.train_data, self.batches_done
        trainer.epoch_data_rng = self.epoch_data_rng if self.epoch_data_rng is not None \
            else data.rng_states()
        if self.batches_complete:
            set_rng_state(self.rng)  # the data's own generators: restore() put them back
            return None
        if self.epoch_data_rng is not None:
            data.set_rng_states(self.epoch_data_rng)  # the replay below starts from them
        if skip == 0:
            # nothing of this epoch was trained: replay it from its start
            set_rng_state({**self.rng, "torch": epoch_rng})
            return iter(data.epoch(epoch))
        if hasattr(data, "order"):  # arrays: the order is a pure function of (seed, epoch)
            set_rng_state(self.rng)
            return iter(data.epoch(epoch, skip))
        # a DataLoader draws its shuffle from torch's generator (or its own) when it is
        # iterated: replay that from the epoch's start, skip the batches done, then restore
        # torch's generators (the replay has put the loader's own where the run had them)
        torch.set_rng_state(epoch_rng)
        batches = iter(data.epoch(epoch))
        for done in range(skip):
            if next(batches, _END) is _END:
                raise CheckpointMismatchError(
                    None, f"train_data yielded only {done} batches in epoch {epoch}, but the "
                          f"checkpoint had done {skip}; an exact resume needs the same data")
        set_rng_state(self.rng)
        return batches


_END = object()


def _load_metric_set(metric_set: Any, state: dict[str, Any] | None, device: Any) -> None:
    if metric_set is not None:
        metric_set.load_state_dict(state, device)