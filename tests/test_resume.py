"""Exact resume: a run interrupted anywhere and resumed ends bitwise equal to one that was not.

The interruption here is an exception raised by a callback in the same process (the real
SIGKILL tests are in test_kill_resume.py); the resumed trainer is built fresh, as a new
process would build it.
"""

from __future__ import annotations

import random
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import hookline
from hookline.callbacks import BackupAndRestore, OnExceptionCheckpoint
from hookline.checkpoint import (
    CheckpointMismatchError,
    CorruptCheckpointError,
    build_checkpoint,
    load_checkpoint,
    write_checkpoint,
)
from hookline.testing import Crash, crash_at, tiny_data

EPOCHS = 3


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))


class Augmented(Dataset):
    """Draws from torch, numpy and Python's random for every sample (main-process loading)."""

    def __init__(self) -> None:
        self.x, self.y = tiny_data(60)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        jitter = float(np.random.uniform(-0.01, 0.01)) + random.uniform(-0.01, 0.01)
        return self.x[i] + 0.1 * torch.randn(8) + jitter, self.y[i]


def persistent_loader(own_generator: bool) -> DataLoader:
    """One worker kept from epoch to epoch: torch builds its iterator (drawing the workers'
    base seed) in the first epoch only, and later epochs reset it."""
    x, y = tiny_data(32)
    generator = torch.Generator().manual_seed(123) if own_generator else None
    return DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, num_workers=1,
                      persistent_workers=True, generator=generator)


def make(callbacks: list[Any] = (), *, data: str = "arrays", **options: Any) -> hookline.Trainer:
    train: Any = tiny_data(64)
    if data == "loader":
        train = DataLoader(Augmented(), batch_size=8, shuffle=True)
    elif data == "own_generator":  # torch's reproducibility recipe: it shuffles from its own
        train = DataLoader(Augmented(), batch_size=8, shuffle=True,
                           generator=torch.Generator().manual_seed(123))
    elif data.startswith("persistent"):  # "persistent" or "persistent_own_generator"
        train = persistent_loader(own_generator=data.endswith("generator"))
    options.setdefault("epochs", EPOCHS)
    return hookline.Trainer(net(), loss="cross_entropy", train_data=train,
                            val_data=tiny_data(24, seed=1), batch_size=8, seed=11,
                            callbacks=list(callbacks), verbose=0, device="cpu", **options)


def interrupt_at(event: str, n: int) -> hookline.LambdaCallback:
    """Crash at the n-th ``event``; at the epoch's end after History (order 90) has recorded
    the epoch, as a failing checkpoint callback would."""
    return crash_at(event, n, order=150 if event == "on_fit_epoch_end" else 0)


def assert_same_weights(model: nn.Module, reference: nn.Module) -> None:
    state, expected = model.state_dict(), reference.state_dict()
    assert [k for k in expected if not torch.equal(state[k], expected[k])] == []


_REFERENCES: dict[tuple, Any] = {}


def reference(**options: Any) -> hookline.Trainer:
    key = tuple(sorted(options.items()))
    if key not in _REFERENCES:
        trainer = make(**options)
        trainer.fit()
        _REFERENCES[key] = trainer
    return _REFERENCES[key]


def history(trainer: hookline.Trainer) -> dict[str, list]:
    return trainer.callbacks.find(hookline.History)[0].history


@pytest.mark.parametrize(("event", "n"), [
    ("on_train_batch_end", 4),     # mid-epoch, one batch after a backup
    ("on_train_batch_end", 8),     # the epoch's last batch, before its end-of-epoch work
    ("on_after_backward", 11),     # inside a batch
    ("on_val_batch_end", 2),       # during validation
    ("on_fit_epoch_end", 2),       # at the end of an epoch
])
@pytest.mark.parametrize("data", ["arrays", "loader"])
def test_resume_from_a_backup_is_exact(tmp_path: Path, event: str, n: int, data: str) -> None:
    options = {"data": data, "accumulate": 2 if data == "loader" else 1,
               "train_metrics": True}
    first = make([BackupAndRestore(tmp_path, save_freq=3), interrupt_at(event, n)], **options)
    with pytest.raises(Crash):
        first.fit()
    resumed = make([BackupAndRestore(tmp_path, save_freq=3)], **options)
    resumed.fit()
    assert resumed.resumed_from == tmp_path / "latest.ckpt"
    expected = reference(**options)
    assert_same_weights(resumed.model, expected.model)
    assert resumed.metrics == expected.metrics  # the resumed epoch's mean loss included
    assert history(resumed) == history(expected)  # every epoch once
    assert not (tmp_path / "latest.ckpt").exists()  # delete_checkpoint=True


@pytest.mark.parametrize(("save_freq", "phase"), [(3, "train"), ("epoch", "epoch_done")])
def test_a_loader_shuffling_with_its_own_generator_resumes_exactly(tmp_path: Path,
                                                                   save_freq: Any,
                                                                   phase: str) -> None:
    """DataLoader(generator=...) draws its order from that generator, not torch's: a backup
    holds its state at the epoch's start (a mid-epoch resume replays the epoch from it) and
    when it was taken (the next epoch after an epoch-boundary backup draws from it)."""
    first = make([BackupAndRestore(tmp_path, save_freq=save_freq),
                  interrupt_at("on_train_batch_end", 20)], data="own_generator")
    with pytest.raises(Crash):
        first.fit()
    assert load_checkpoint(tmp_path / "latest.ckpt")["run"]["phase"] == phase
    resumed = make([BackupAndRestore(tmp_path, save_freq=save_freq)], data="own_generator")
    resumed.fit()
    assert resumed.resumed_from == tmp_path / "latest.ckpt"
    expected = reference(data="own_generator")
    assert_same_weights(resumed.model, expected.model)
    assert history(resumed) == history(expected)


def test_a_checkpoint_without_the_loaders_generator_states_still_resumes(
        tmp_path: Path) -> None:
    """Files written before the run state held train_data's own generators lack both fields:
    they read as nothing recorded, and a loader shuffling from torch's generator resumes from
    them exactly as before."""
    first = make([BackupAndRestore(tmp_path, save_freq=3, delete_checkpoint=False),
                  interrupt_at("on_train_batch_end", 20)], data="loader")
    with pytest.raises(Crash):
        first.fit()
    payload = load_checkpoint(tmp_path / "latest.ckpt")
    del payload["run"]["epoch_data_rng"], payload["run"]["data_rng"]
    payload["callbacks"] = {}  # the backup callback is no part of this resume
    write_checkpoint(payload, tmp_path / "old.ckpt")
    resumed = make(data="loader", resume=tmp_path / "old.ckpt")
    resumed.fit()
    assert_same_weights(resumed.model, reference(data="loader").model)


def test_resuming_with_a_loader_without_its_generator_is_refused(tmp_path: Path) -> None:
    trainer = make(epochs=1, data="own_generator")
    trainer.fit()
    write_checkpoint(build_checkpoint(trainer), tmp_path / "run.ckpt")
    with pytest.raises(CheckpointMismatchError, match=r"1 generator\(s\) of its own .* with 0 "
                                                      r"now.*same generator="):
        make(data="loader", resume=tmp_path / "run.ckpt").fit()


@pytest.mark.parametrize("data", ["persistent", "persistent_own_generator"])
@pytest.mark.parametrize(("save_freq", "phase"), [(3, "train"), ("epoch", "epoch_done")])
def test_a_loader_with_persistent_workers_resumes_exactly_in_a_later_epoch(
        tmp_path: Path, save_freq: Any, phase: str, data: str) -> None:
    """Resumed in epoch 2, the loader's iterator is built there: it is built first with every
    generator put back after, so the epoch's iter() is a reset that draws the same shuffle
    (and leaves the same stream for dropout) as in the uninterrupted run."""
    def build(callbacks: list[Any]) -> hookline.Trainer:  # 4 batches an epoch
        return make(callbacks, data=data)
    expected = build([])
    expected.fit()
    first = build([BackupAndRestore(tmp_path, save_freq=save_freq),
                   interrupt_at("on_train_batch_end", 10)])
    with pytest.raises(Crash):
        first.fit()
    saved = load_checkpoint(tmp_path / "latest.ckpt")["run"]
    assert (saved["phase"], saved["epoch"]) == (phase, 2 if phase == "train" else 1)
    resumed = build([BackupAndRestore(tmp_path, save_freq=save_freq)])
    resumed.fit()
    assert resumed.resumed_from == tmp_path / "latest.ckpt"
    assert_same_weights(resumed.model, expected.model)
    assert history(resumed) == history(expected)
    for trainer in (expected, first, resumed):
        # shut the worker down now: collected with the trainer's reference cycles, torch's
        # iterator waits out its 5 s join timeout before it terminates it
        trainer.train_data.source._iterator = None


@pytest.mark.parametrize(("event", "n"), [("on_train_batch_end", 4), ("on_train_batch_end", 8),
                                        ("on_val_batch_end", 2)])
def test_a_torchmetrics_train_metric_resumes_mid_epoch(tmp_path: Path, event: str,
                                                       n: int) -> None:
    from torchmetrics import MetricCollection
    from torchmetrics.classification import (
        MulticlassAccuracy,
        MulticlassAUROC,
        MulticlassConfusionMatrix,
        MulticlassRecall,
    )

    class Diagonal(MulticlassConfusionMatrix):  # a matrix state, reduced to one number
        def compute(self) -> torch.Tensor:
            return super().compute().diagonal().sum()

    def build(callbacks: list[Any], **options: Any) -> hookline.Trainer:
        # a collection's members of one compute group share their states
        collection = MetricCollection({"recall": MulticlassRecall(num_classes=3),
                                       "per_class": MulticlassAccuracy(num_classes=3,
                                                                       average=None)})
        metrics = [MulticlassAccuracy(num_classes=3, average="micro"), Diagonal(num_classes=3),
                   MulticlassAUROC(num_classes=3, thresholds=None),  # list states: every batch
                   collection]
        return make(callbacks, train_metrics=True, metrics=metrics, **options)
    expected = build([])
    expected.fit()
    # during validation, a checkpoint holds the train metrics' state beside validation's
    first = build([OnExceptionCheckpoint(tmp_path, rng="all"), interrupt_at(event, n)])
    with pytest.raises(Crash):
        first.fit()
    resumed = build([], resume=tmp_path / "on_exception.ckpt")
    resumed.fit()
    assert_same_weights(resumed.model, expected.model)
    logged, reference_log = history(resumed), history(expected)
    assert {"multiclass_accuracy", "diagonal", "multiclass_auroc", "recall",
            "per_class_2"} <= set(logged)
    assert logged == reference_log  # train metrics over the whole resumed epoch


@pytest.mark.parametrize(("event", "n"), [
    ("on_train_batch_start", 1), ("on_after_forward", 6), ("on_train_batch_end", 13),
    ("on_val_batch_start", 3), ("on_train_epoch_end", 2), ("on_fit_epoch_end", 1)])
@pytest.mark.parametrize("data", ["arrays", "loader", "own_generator"])
def test_resume_from_an_exception_checkpoint_is_exact(tmp_path: Path, event: str, n: int,
                                                      data: str) -> None:
    first = make([OnExceptionCheckpoint(tmp_path, rng="all"), interrupt_at(event, n)],
                 data=data)
    with pytest.raises(Crash):
        first.fit()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an exact checkpoint resumes without a warning
        resumed = make(data=data, resume=tmp_path / "on_exception.ckpt")
        resumed.fit()
    expected = reference(data=data)
    assert_same_weights(resumed.model, expected.model)
    assert history(resumed) == history(expected)


def test_a_later_fit_after_a_resume_is_a_new_run_from_initial_epoch(tmp_path: Path) -> None:
    def epochs_of(trainer: hookline.Trainer) -> list[int]:
        seen: list[int] = []
        trainer.add_callback("on_train_epoch_start", lambda t: seen.append(t.epoch))
        trainer.fit()
        return seen
    for initial in (0, 1):
        crashed = make([BackupAndRestore(tmp_path / str(initial)),
                        interrupt_at("on_train_epoch_start", 3)], epochs=5,
                       initial_epoch=initial)
        with pytest.raises(Crash):
            crashed.fit()
        assert epochs_of(crashed) == list(range(initial + 2, 5))  # resumed from the backup
        never_resumed = make(epochs=5, initial_epoch=initial)
        never_resumed.fit()
        # the third fit finds no backup (the resumed fit deleted it): a new run, whole
        assert epochs_of(crashed) == epochs_of(never_resumed) == list(range(initial, 5))
        assert crashed.step == never_resumed.step  # the step count carries over, as Keras'
        assert_same_weights(crashed.model, never_resumed.model)


def test_an_exception_mid_accumulation_is_saved_but_flagged_inexact(tmp_path: Path) -> None:
    first = make([OnExceptionCheckpoint(tmp_path), interrupt_at("on_after_forward", 6)],
                 accumulate=4)
    with pytest.raises(Crash):
        first.fit()
    payload = load_checkpoint(tmp_path / "on_exception.ckpt")
    assert payload["run"]["exact"] is False
    with pytest.warns(RuntimeWarning, match="not an exact resume point.*accumulation"):
        make(resume=tmp_path / "on_exception.ckpt", accumulate=4).fit()


def test_lr_schedulers_and_the_stop_flag_are_restored(tmp_path: Path) -> None:
    def build(callbacks: list[Any], **options: Any) -> hookline.Trainer:
        trainer = make(callbacks, epochs=6, **options)
        scheduler = torch.optim.lr_scheduler.StepLR(trainer.optimizer, step_size=1, gamma=0.5)
        trainer.lr_schedulers.append(scheduler)
        trainer.add_callback("on_train_epoch_end", lambda t: scheduler.step())
        trainer.add_callback("on_fit_epoch_end", lambda t: t.epoch == 3 and t.request_stop("x"))
        return trainer
    expected = build([])
    expected.fit()
    first = build([BackupAndRestore(tmp_path, save_freq=5), interrupt_at("on_train_batch_end",
                                                                          20)])
    with pytest.raises(Crash):
        first.fit()
    resumed = build([BackupAndRestore(tmp_path, save_freq=5)])
    resumed.fit()
    assert resumed.epoch == expected.epoch == 3 and resumed.stop_reason == "x"
    assert resumed.optimizer.param_groups[0]["lr"] == expected.optimizer.param_groups[0]["lr"]
    assert_same_weights(resumed.model, expected.model)
    # a checkpoint of the stopped run resumes to "nothing left to do"
    write_checkpoint(build_checkpoint(resumed), tmp_path / "stopped.ckpt")
    again = build([BackupAndRestore(tmp_path, save_freq=5)], resume=tmp_path / "stopped.ckpt")
    again.fit()
    assert_same_weights(again.model, expected.model)
    without = make(resume=tmp_path / "stopped.ckpt", epochs=6)
    with pytest.raises(CheckpointMismatchError, match="1 LR scheduler state.*has 0"):
        without.fit()


def test_grad_scaler_state_is_restored(tmp_path: Path) -> None:
    trainer = make(precision="fp16", epochs=1)
    trainer.fit()
    trainer.scaler.update(new_scale=1024.0)
    write_checkpoint(build_checkpoint(trainer), tmp_path / "fp16.ckpt")
    assert load_checkpoint(tmp_path / "fp16.ckpt")["scaler"]["scale"] == 1024.0
    resumed = make(precision="fp16", epochs=1, resume=tmp_path / "fp16.ckpt")
    resumed.fit()  # nothing left to train; the scaler was loaded
    assert resumed.scaler.get_scale() == 1024.0


def test_resume_true_takes_the_newest_and_falls_back_from_a_corrupt_one(tmp_path: Path) -> None:
    first = make([BackupAndRestore(tmp_path / "backup", save_freq=4, delete_checkpoint=False),
                  interrupt_at("on_train_batch_end", 14)], save_dir=tmp_path)
    with pytest.raises(Crash):
        first.fit()
    backup = tmp_path / "backup"
    assert load_checkpoint(backup / "latest.ckpt")["run"]["step"] == 12
    data = (backup / "latest.ckpt").read_bytes()
    (backup / "latest.ckpt").write_bytes(data[:len(data) // 2])  # damaged after it was written
    resumed = make(save_dir=tmp_path, resume=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed.fit()
    messages = [str(warning.message) for warning in caught]
    assert len(messages) == 2
    assert re.search(r"backup/latest\.ckpt is truncated.*falling back", messages[0])
    # the backup callback is not part of the resumed run: its state is reported as unused
    assert re.search(r"previous.ckpt holds state for callbacks this run does not have "
                     r"\(BackupAndRestore\[", messages[1])
    assert resumed.resumed_from == backup / "previous.ckpt"
    assert_same_weights(resumed.model, reference().model)


def test_every_corrupt_checkpoint_is_an_error_not_a_fresh_start(tmp_path: Path) -> None:
    (tmp_path / "a.ckpt").write_bytes(b"garbage")
    with pytest.warns(RuntimeWarning, match="a.ckpt is not a hookline checkpoint"), \
            pytest.raises(CorruptCheckpointError, match="no usable checkpoint"):
        make(resume=tmp_path).fit()


def test_nothing_to_resume_from(tmp_path: Path) -> None:
    with pytest.warns(RuntimeWarning, match="resume=True found no checkpoint.*from scratch"
                      ) as caught:
        make(save_dir=tmp_path, resume=True, epochs=1).fit()
    # the warning names the line that called fit(), not a module of the engine
    assert [Path(w.filename) for w in caught] == [Path(__file__)]
    with pytest.raises(FileNotFoundError, match="resume='nowhere.ckpt': no such file"):
        make(resume="nowhere.ckpt").fit()


def test_resuming_with_other_data_is_refused(tmp_path: Path) -> None:
    trainer = make(epochs=1)
    trainer.fit()
    write_checkpoint(build_checkpoint(trainer), tmp_path / "run.ckpt")
    other = hookline.Trainer(net(), loss="cross_entropy", train_data=tiny_data(40),
                             batch_size=8, verbose=0, resume=tmp_path / "run.ckpt")
    with pytest.raises(CheckpointMismatchError, match="size 64 then, 40 now"):
        other.fit()


def test_a_callback_that_cannot_load_its_state_is_named_and_nothing_else_loads(
        tmp_path: Path) -> None:
    class Renamed(hookline.Callback):  # its new version reads a key the old one never wrote
        def state_dict(self) -> dict[str, Any]:
            return {"count": 1}

        def load_state_dict(self, state: dict[str, Any]) -> None:
            self.total = state["total"]
    trainer = make([Renamed()], epochs=1)
    trainer.fit()
    write_checkpoint(build_checkpoint(trainer), tmp_path / "run.ckpt")
    resumed = make([Renamed()], epochs=2, resume=tmp_path / "run.ckpt")
    fresh = {key: value.clone() for key, value in resumed.model.state_dict().items()}
    with pytest.raises(CheckpointMismatchError,
                       match=r"callback .*Renamed could not load the state it saved \(KeyError: "
                             r"'total'\); the model, optimizers and counters were not loaded"):
        resumed.fit()
    assert all(torch.equal(fresh[key], value) for key, value in resumed.model.state_dict().items())
    assert resumed.step == 0  # before: a bare KeyError, with the weights already loaded


def test_an_unseeded_run_resumes_with_its_own_shuffle_order(tmp_path: Path) -> None:
    def unseeded(callbacks: list[Any], process: int) -> hookline.Trainer:
        model = net()
        torch.manual_seed(process)  # another process: another unseeded draw
        return hookline.Trainer(model, loss="cross_entropy", train_data=tiny_data(64),
                                epochs=2, batch_size=8, callbacks=callbacks, verbose=0)
    first = unseeded([BackupAndRestore(tmp_path, save_freq=3), interrupt_at(
        "on_train_batch_end", 11)], process=1)
    with pytest.raises(Crash):
        first.fit()
    resumed = unseeded([BackupAndRestore(tmp_path, save_freq=3)], process=2)
    assert resumed.args.seed != first.args.seed  # each process draws its own seed...
    resumed.fit()
    assert resumed.args.seed == first.args.seed  # ...and a resume adopts the checkpoint's
    assert torch.equal(resumed.train_data.order(1), first.train_data.order(1))


def test_the_keras_door_resumes_too(tmp_path: Path) -> None:
    x, y = tiny_data(64)

    def fit(callbacks: list[Any], **options: Any) -> hookline.Model:
        model = hookline.Model(net(), optimizer="adam", loss="cross_entropy",
                               metrics=["accuracy"], device="cpu")
        model.fit(x, y, batch_size=8, epochs=EPOCHS, verbose=0, callbacks=callbacks,
                  validation_split=0.25, seed=5, **options)
        return model
    expected = fit([])
    with pytest.raises(Crash):
        fit([OnExceptionCheckpoint(tmp_path), interrupt_at("on_train_batch_end", 9)])
    resumed = fit([], resume=tmp_path / "on_exception.ckpt")
    assert_same_weights(resumed.module, expected.module)
    assert resumed.history.history == expected.history.history


def test_backup_and_restore_checks_its_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="save_freq=0.*'epoch' or a number"):
        BackupAndRestore(tmp_path, save_freq=0)
    with pytest.raises(TypeError, match="must be a folder path"):
        BackupAndRestore(None)  # type: ignore[arg-type]
    kept = BackupAndRestore(tmp_path, delete_checkpoint=False)
    make([kept], epochs=1).fit()
    assert kept.latest.exists()
    assert kept.checkpoint_dir == tmp_path
