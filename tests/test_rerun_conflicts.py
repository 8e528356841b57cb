"""A rerun that does not fit the checkpoint it would resume stops with the argument and both
values, before anything is trained or deleted; a moved run folder keeps its CSV rows."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

import hookline
from hookline.callbacks import BackupAndRestore, CSVLogger
from hookline.checkpoint import CheckpointMismatchError, load_checkpoint, write_checkpoint
from hookline.testing import Crash, crash_at, tiny_data, tiny_model


def make(folder: Path, callbacks: list[Any] = (), **options: Any) -> hookline.Trainer:
    settings: dict[str, Any] = dict(loss="cross_entropy", train_data=tiny_data(48),
                                    batch_size=8, epochs=4, seed=3, device="cpu", verbose=0)
    settings.update(options)
    return hookline.Trainer(tiny_model(), callbacks=[BackupAndRestore(folder / "backup"),
                                                     *callbacks], **settings)


def interrupted(folder: Path, **options: Any) -> Path:
    """A run killed in its third epoch; returns its backup file."""
    with pytest.raises(Crash):
        make(folder, [crash_at("on_train_batch_end", 15)], **options).fit()
    return folder / "backup" / "latest.ckpt"


@pytest.mark.parametrize(("rerun", "message"), [
    ({"epochs": 2}, r"epochs=2 but the checkpoint's run had trained 2 of its 4 epochs"),
    ({"seed": 4}, r"seed=4 but the checkpoint's run used seed=3"),
    ({"accumulate": 2}, r"accumulate=2 but the checkpoint's run used accumulate=1"),
    ({"steps_per_epoch": 5}, (r"steps_per_epoch=5 but the checkpoint's run used "
                              r"steps_per_epoch=None")),
    # the restored optimizer state would keep 1e-3: lr=0.5 would be silently unused
    ({"lr": 0.5}, (r"lr=0.5 but the checkpoint's run used lr=0.001 \(a resume restores the "
                   r"optimizer's state, its rate included")),
])
def test_a_conflicting_rerun_names_the_argument_and_deletes_nothing(
        tmp_path: Path, rerun: dict, message: str) -> None:
    backup = interrupted(tmp_path)
    before = backup.read_bytes()
    with pytest.raises(CheckpointMismatchError, match=message):
        make(tmp_path, **rerun).fit()
    assert backup.read_bytes() == before  # the backup is still there, untouched
    make(tmp_path).fit()  # the right arguments still resume it


def _two_groups(model: torch.nn.Module) -> Any:
    return lambda params: torch.optim.Adam([{"params": model[0].parameters()},
                                            {"params": model[2].parameters(), "lr": 1e-4}])


def _extra_scheduler(trainer: hookline.Trainer) -> None:
    trainer.lr_schedulers.append(torch.optim.lr_scheduler.StepLR(trainer.optimizer, 1))


@pytest.mark.parametrize(("optimizer", "setup", "message"), [
    (_two_groups, None, r"the state of optimizer 'optimizer' does not fit it"),
    (None, _extra_scheduler, r"holds 0 LR scheduler state\(s\) but trainer.lr_schedulers"),
])
def test_a_resume_refused_for_its_optimizer_or_schedulers_loads_nothing(
        tmp_path: Path, optimizer: Any, setup: Any, message: str) -> None:
    backup = interrupted(tmp_path)
    model = tiny_model(seed=42)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    options = {"optimizer": optimizer(model)} if optimizer is not None else {}
    trainer = hookline.Trainer(model, loss="cross_entropy", train_data=tiny_data(48),
                               batch_size=8, epochs=4, seed=3, device="cpu", verbose=0,
                               resume=backup, **options)
    if setup is not None:
        setup(trainer)
    with pytest.raises(CheckpointMismatchError, match=message):
        trainer.fit()
    after = model.state_dict()
    assert [key for key in before if not torch.equal(before[key], after[key])] == []
    assert trainer.optimizer.state_dict()["state"] == {} and trainer.step == 0


@pytest.mark.parametrize(("saved", "now", "classes"), [
    ("adam", "sgd", ("Adam", "SGD")),  # torch's KeyError: 'momentum' at the first step
    ("sgd", "adam", ("SGD", "Adam")),  # KeyError: 'betas'
    ("adam", "rmsprop", ("Adam", "RMSprop")),  # KeyError: 'square_avg'
    ("adam", "adamw", ("Adam", "AdamW")),  # the same entries: it trained on silently
])
def test_a_resume_with_another_optimizer_class_is_refused_before_anything_is_loaded(
        tmp_path: Path, saved: str, now: str, classes: tuple[str, str]) -> None:
    backup = interrupted(tmp_path, optimizer=saved)
    model = tiny_model(seed=42)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    trainer = hookline.Trainer(model, optimizer=now, loss="cross_entropy",
                               train_data=tiny_data(48), batch_size=8, epochs=4, seed=3,
                               device="cpu", verbose=0, resume=backup)
    old, new = classes
    with pytest.raises(CheckpointMismatchError, match=(
            rf"saved with optimizer class {old}, and optimizer 'optimizer' of this run is of "
            rf"class {new}: .*Nothing was loaded; resume with the {old} optimizer it was saved with, "
            rf"or load only the weights")):
        trainer.fit()
    after = model.state_dict()
    assert [key for key in before if not torch.equal(before[key], after[key])] == []
    make(tmp_path, optimizer=saved).fit()  # the optimizer it was saved with resumes it


def test_a_checkpoint_that_does_not_record_its_optimizer_class_still_resumes(
        tmp_path: Path) -> None:
    payload = load_checkpoint(interrupted(tmp_path))
    assert payload.pop("optimizer_classes") == ["Adam"]
    write_checkpoint(payload, tmp_path / "older.ckpt")  # as an earlier version wrote it
    resumed = make(tmp_path / "resumed", resume=tmp_path / "older.ckpt")
    resumed.fit()
    assert resumed.resumed_from == tmp_path / "older.ckpt"
    expected = make(tmp_path / "uninterrupted")
    expected.fit()
    state, reference = resumed.model.state_dict(), expected.model.state_dict()
    assert [key for key in reference if not torch.equal(state[key], reference[key])] == []


def test_lr_is_compared_only_where_it_built_the_optimizer(tmp_path: Path) -> None:
    """An optimizer the user built takes no rate from lr=, so its run records none and a
    rerun's lr= is not compared; nor is it against a file written before lr was kept."""
    def sgd(params: Any) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=0.05)

    backup = interrupted(tmp_path, optimizer=sgd)
    assert load_checkpoint(backup)["run"]["args"]["lr"] is None
    resumed = make(tmp_path, optimizer=sgd, lr=0.5)
    resumed.fit()
    assert resumed.resumed_from == backup and resumed.optimizer.param_groups[0]["lr"] == 0.05
    payload = load_checkpoint(interrupted(tmp_path / "named"))
    assert payload["run"]["args"].pop("lr") == 0.001
    write_checkpoint(payload, tmp_path / "older.ckpt")  # as an earlier version wrote it
    older = make(tmp_path / "older", resume=tmp_path / "older.ckpt", lr=0.5)
    older.fit()
    assert older.resumed_from == tmp_path / "older.ckpt"


def test_every_checkpoint_carries_its_run_id_and_a_resume_keeps_it(tmp_path: Path) -> None:
    backup = interrupted(tmp_path)
    run_id = load_checkpoint(backup)["run"]["run_id"]
    assert len(run_id) == 12
    resumed = make(tmp_path)
    resumed.fit()
    assert resumed.run_id == run_id
    other = make(tmp_path / "elsewhere")
    other.fit()
    assert other.run_id != run_id


def test_a_moved_run_folder_keeps_every_row_of_its_csv(tmp_path: Path) -> None:
    first = tmp_path / "a"
    with pytest.raises(Crash):
        make(first, [CSVLogger(first / "results.csv"), crash_at("on_fit_epoch_end", 3,
                                                                 order=150)]).fit()
    moved = tmp_path / "b"
    shutil.move(str(first), str(moved))
    make(moved, [CSVLogger(moved / "results.csv")]).fit()
    with open(moved / "results.csv") as file:
        epochs = [int(row["epoch"]) for row in csv.DictReader(file)]
    assert epochs == [0, 1, 2, 3]


def test_filter_counts_are_saved_so_a_resumed_filter_fires_where_it_did(tmp_path: Path) -> None:
    from hookline.callbacks import OnExceptionCheckpoint

    def run(callbacks: list[Any], **options: Any) -> list[tuple[int, int]]:
        fired: list[tuple[int, int]] = []
        trainer = hookline.Trainer(tiny_model(), loss="cross_entropy", train_data=tiny_data(48),
                                   batch_size=8, epochs=3, seed=1, device="cpu", verbose=0,
                                   callbacks=callbacks, **options)
        trainer.add_callback("on_train_batch_end",
                             lambda t: fired.append((t.epoch, t.batch_i)), every=4)
        try:
            trainer.fit()
        except Crash:
            pass
        return fired
    expected = run([])
    before = run([OnExceptionCheckpoint(tmp_path, rng="all"),
                  crash_at("on_train_batch_start", 10)])
    after = run([], resume=tmp_path / "on_exception.ckpt")
    assert before + after == expected  # every 4th batch of the whole run, across the resume


def test_a_callback_asks_the_engine_to_resume_and_the_arguments_stay_as_given(
        tmp_path: Path) -> None:
    interrupted(tmp_path)
    resumed = make(tmp_path)
    seen: list[Any] = []
    resumed.add_callback("on_pretrain_routine_end", lambda t: seen.append(t.args.resume))
    resumed.fit()
    assert resumed.resumed and resumed.resumed_from == tmp_path / "backup" / "latest.ckpt"
    assert seen == [None] and resumed.args.resume is None  # BackupAndRestore wrote no option


def test_a_moved_run_folder_keeps_its_tensorboard_scalars_and_its_plot(tmp_path: Path) -> None:
    from test_tensorboard import _read

    from hookline.loggers import PlotResults, TensorBoard
    first = tmp_path / "a"

    def loggers(folder: Path) -> list[Any]:
        return [TensorBoard(folder / "tb", log_every_n_steps=0),
                PlotResults(folder / "results.png")]
    with pytest.raises(Crash):
        make(first, [*loggers(first), crash_at("on_fit_epoch_end", 3, order=150)]).fit()
    moved = tmp_path / "b"
    shutil.move(str(first), str(moved))
    plots = loggers(moved)
    make(moved, plots).fit()
    steps = [event.step for event in _read(moved / "tb").Scalars("epoch/loss")]
    assert steps == [0, 1, 2, 3]  # the earlier epochs from the moved files, each once
    assert plots[1].plotted["loss"]["loss"][0] == [1.0, 2.0, 3.0, 4.0]
