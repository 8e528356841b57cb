"""Option checks at construction: errors name the option and the fix; number strings are
converted by one rule; a full disk names the file and what was kept."""

from __future__ import annotations

import errno
import os
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import hookline
from hookline import LambdaCallback
from hookline.callbacks import ModelCheckpoint
from hookline.checkpoint import (
    CheckpointWriteError,
    load_checkpoint,
    load_weights,
    save_weights,
)
from hookline.testing import tiny_data, tiny_model


def trainer(**options: Any) -> hookline.Trainer:
    x, y = tiny_data(samples=16)
    settings: dict[str, Any] = {"loss": "cross_entropy", "train_data": (x, y), "batch_size": 8,
                                "verbose": 0, "device": "cpu", "default_callbacks": False,
                                "seed": 0}
    settings.update(options)
    return hookline.Trainer(tiny_model(), **settings)


# --- gradient clipping ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["clip_grad_norm", "clip_grad_value"])
@pytest.mark.parametrize("value", [-1, 0, -0.5, "abc", float("nan"), True])
def test_clipping_that_is_not_a_positive_number_is_refused(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=rf"Trainer\({name}=.*\) is not allowed: {name} must "
                                         rf"be a number > 0 .*None turns clipping off"):
        trainer(**{name: value})


def test_positive_clipping_is_accepted() -> None:
    assert trainer(clip_grad_norm=1.0, clip_grad_value="0.5").args.clip_grad_value == 0.5


# --- strings for numbers: converted when exactly a literal of the option's kind ---------------
def test_number_strings_are_converted() -> None:
    built = trainer(lr="1e-3", epochs="5", batch_size=" 4 ", accumulate="2", seed="7")
    assert built.optimizer.param_groups[0]["lr"] == 1e-3
    assert (built.epochs, built.args.batch_size, built.args.accumulate, built.args.seed) == \
        (5, 4, 2, 7)
    assert isinstance(built.epochs, int)


@pytest.mark.parametrize("options, message", [
    ({"epochs": "5.0"}, (r"Trainer\(epochs='5.0'\) is not allowed: epochs must be an integer "
                         r">= 0; pass e.g. epochs=1")),
    ({"epochs": 2.0}, r"epochs must be an integer >= 0"),
    ({"lr": "fast"}, (r"Trainer\(lr='fast'\) is not allowed: lr must be a number >= 0 "
                      r"\(the learning rate")),
    ({"lr": "nan"}, r"lr must be a number >= 0"),
    ({"lr": -0.1}, r"lr must be a number >= 0"),
    ({"batch_size": "sixteen"}, r"batch_size must be an integer >= 1"),
    ({"steps_per_epoch": "0"}, r"steps_per_epoch must be an integer >= 1"),
])
def test_strings_that_are_not_numbers_of_the_options_kind_are_refused(
        options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        trainer(**options)


# --- switches: "False" never silently means True -------------------------------------------
def first_batch_order(shuffle: Any) -> list[float]:
    x, y = torch.arange(8.0).reshape(8, 1), torch.zeros(8, dtype=torch.long)
    seen: list[list[float]] = []
    hookline.Trainer(torch.nn.Linear(1, 2), loss="cross_entropy", train_data=(x, y),
                     batch_size=8, shuffle=shuffle, seed=1, verbose=0, device="cpu",
                     callbacks=[LambdaCallback(on_train_batch_start=lambda t: seen.append(
                         t.batch[0].flatten().tolist()))]).fit()
    return seen[0]


@pytest.mark.parametrize("off", ["False", "false", " no ", "OFF", "0", 0])
def test_switch_strings_that_say_off_turn_it_off(off: Any) -> None:
    assert first_batch_order(off) == [float(i) for i in range(8)]
    built = trainer(check_finite=off, train_metrics=off, default_callbacks=off,
                    profile=off, detect_anomaly=off)
    assert built.args.check_finite is False and built.args.detect_anomaly is False
    assert built.train_metric_set is None and built.callbacks.profile is False
    assert ModelCheckpoint(save_weights_only=off).save_weights_only is False


@pytest.mark.parametrize("on", ["True", "yes", "On", "1", 1, np.True_])
def test_switch_strings_that_say_on_turn_it_on(on: Any) -> None:
    assert first_batch_order(on) != [float(i) for i in range(8)]
    built = trainer(check_finite=on, train_metrics=on)
    assert built.args.check_finite is True and built.train_metric_set is not None
    assert ModelCheckpoint(save_weights_only=on).save_weights_only is True


@pytest.mark.parametrize("name", ["shuffle", "train_metrics", "automatic_optimization",
                                  "check_finite", "detect_anomaly", "default_callbacks",
                                  "profile"])
@pytest.mark.parametrize("value", ["maybe", "", None, 2, [True]])
def test_switches_that_are_neither_on_nor_off_are_refused(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=rf"Trainer\({name}={re.escape(repr(value))}\) is not "
                                         rf"allowed: {name} is a switch; pass True or False "
                                         rf"\(or a string: 'true'/'false', 'yes'/'no'"):
        trainer(**{name: value})


def test_a_model_checkpoint_switch_that_is_neither_on_nor_off_is_refused() -> None:
    with pytest.raises(ValueError, match=r"ModelCheckpoint\(save_weights_only='maybe'\) is "
                                         r"not allowed: save_weights_only is a switch"):
        ModelCheckpoint(save_weights_only="maybe")


# --- save_dir ---------------------------------------------------------------------------------
def test_a_save_dir_that_is_a_file_fails_at_construction(tmp_path: Path) -> None:
    taken = tmp_path / "results.txt"
    taken.write_text("a file")
    with pytest.raises(NotADirectoryError, match=r"save_dir='.*results\.txt'\) is a file, not a "
                                                 r"folder; pass a folder path"):
        trainer(save_dir=taken)
    with pytest.raises(NotADirectoryError, match=r"save_dir=.*run'\) lies under .*results\.txt"
                                                 r", which is a file"):
        trainer(save_dir=taken / "run")


@pytest.mark.parametrize("option", ["compile", "fast_dev_run"])
def test_compile_and_fast_dev_run_given_as_false_words_are_off(option: str) -> None:
    # before: "False" is a non-empty string, so compile="False" compiled the model
    assert getattr(trainer(**{option: "False"}).args, option) is False
    with pytest.raises(ValueError, match=rf"{option}='sometimes'\) is not allowed"):
        trainer(**{option: "sometimes"})


def test_a_checkpoint_callbacks_folder_that_is_a_file_fails_when_it_is_built(
        tmp_path: Path) -> None:
    """Before: accepted, and OnExceptionCheckpoint's failed write at the crash it exists for
    was only a note on the user's error; BackupAndRestore failed at its first backup."""
    from hookline.callbacks import BackupAndRestore, OnExceptionCheckpoint
    taken = tmp_path / "afile"
    taken.write_text("a file")
    with pytest.raises(NotADirectoryError, match=r"OnExceptionCheckpoint\(dirpath='.*afile'"
                                                 r"\) is a file, not a folder"):
        OnExceptionCheckpoint(taken)
    with pytest.raises(NotADirectoryError, match=r"BackupAndRestore\(backup_dir='.*afile/b'"
                                                 r"\) lies under .*afile, which is a file"):
        BackupAndRestore(taken / "b")
    with pytest.raises(NotADirectoryError, match=r"ModelCheckpoint\(dirpath='.*afile'\) is a "
                                                 r"file"):  # was: at the first save
        ModelCheckpoint(dirpath=taken)
    assert taken.read_text() == "a file"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_an_unwritable_save_dir_fails_at_construction() -> None:
    # /proc refuses new files even to root, where permission bits would not
    with pytest.raises(PermissionError, match=r"save_dir='/proc/hookline-run'\) is not "
                                              r"writable \(it would be created in /proc\).*"
                                              r"choose a folder you can write to"):
        trainer(save_dir="/proc/hookline-run")


def test_a_missing_save_dir_under_a_writable_folder_is_fine_and_nothing_is_left(
        tmp_path: Path) -> None:
    trainer(save_dir=tmp_path / "new" / "run")
    assert list(tmp_path.iterdir()) == []  # the check wrote nothing that stays


# --- a full disk --------------------------------------------------------------------------------
def fail_writes_with_enospc(monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*args: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "write", full)


def test_a_full_disk_names_the_weights_file_and_keeps_the_previous_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = torch.nn.Linear(4, 2)
    path = save_weights(model, tmp_path / "last.pt", {"epoch": 0})
    before = path.read_bytes()
    fail_writes_with_enospc(monkeypatch)
    with pytest.raises(OSError, match=r"could not write .*last\.pt: No space left on device "
                                      r"\(errno ENOSPC\); .*last\.pt still holds its previous "
                                      r"version, unchanged; free disk space") as caught:
        save_weights(model, path, {"epoch": 1})
    monkeypatch.undo()
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(path)
    assert path.read_bytes() == before and load_weights(path)["epoch"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temp file left


def test_a_full_disk_during_a_runs_weights_write_names_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def at_epoch_1(t: hookline.Trainer) -> None:
        if t.epoch == 1:
            fail_writes_with_enospc(monkeypatch)

    run = trainer(epochs=3, save_dir=tmp_path,
                  callbacks=[LambdaCallback(on_train_epoch_start=at_epoch_1)])
    with pytest.raises(OSError, match=r"could not write .*weights/last\.pt: No space left.*"
                                      r"still holds its previous version"):
        run.fit()
    monkeypatch.undo()
    assert load_weights(tmp_path / "weights" / "last.pt")["epoch"] == 0


def test_a_full_disk_during_a_model_checkpoint_names_the_file_and_the_one_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def at_epoch_1(t: hookline.Trainer) -> None:
        if t.epoch == 1:
            checkpoint.wait()  # m-0.pt is on disk (written in the background)
            fail_writes_with_enospc(monkeypatch)

    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="m-{epoch}")
    run = trainer(epochs=3, callbacks=[LambdaCallback(on_train_epoch_start=at_epoch_1),
                                       checkpoint])
    with pytest.raises(CheckpointWriteError, match=r"checkpoint .*m-1\.pt could not be written"
                                                   r".*No space left on device.*The previous "
                                                   r"checkpoint is intact: .*m-0\.pt"):
        run.fit()
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "m-0.pt")["run"]["epoch"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-0.pt"]
