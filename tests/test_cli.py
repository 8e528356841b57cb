"""The command line: tasks, key=value options, a YAML config, clear usage errors."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import numpy as np
import pytest

from hookline.checkpoint import save_weights
from hookline.cli import main, usage
from hookline.cli.help import task_help, type_name
from hookline.cli.tasks import TASKS, option_help
from hookline.events import EVENTS
from hookline.testing import Crash, tiny_model


def test_events_lists_the_catalogue(capsys):
    assert main(["events"]) == 0
    out = capsys.readouterr().out
    assert all(event.name in out for event in EVENTS)


@pytest.mark.parametrize("words, message", [
    (["trian"], "unknown task 'trian'. Did you mean train?"),
    (["train", "ephocs=3"], "unknown option 'ephocs' for train. Did you mean epochs?"),
    (["train", "epochs"], "arguments are key=value pairs, got 'epochs'"),
    (["train", "model=nope"], "unknown model 'nope'"),
    (["train", "cfg=/nonexistent.yaml"], "config file /nonexistent.yaml does not exist"),
])
def test_usage_errors_exit_2_with_a_hint(words, message, capsys):
    assert main(words) == 2
    assert message in capsys.readouterr().err


@pytest.fixture
def npz(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 1, 8, 8)).astype(np.float32)
    y = (x.reshape(64, -1).sum(axis=1) > 0).astype(np.int64)
    path = tmp_path / "data.npz"
    np.savez(path, x=x, y=y, x_val=x[:16], y_val=y[:16])
    np.save(tmp_path / "inputs.npy", x[:10])
    return path


def test_train_val_predict_export_round(tmp_path, npz, capsys):
    run = tmp_path / "run"
    config = tmp_path / "run.yaml"
    config.write_text(f"epochs: 2\nbatch_size: 16\nsave_dir: {run}\nverbose: 0\n")
    assert main(["train", f"cfg={config}", f"data={npz}", "plots=False", "lr=0.01"]) == 0
    assert "done: loss:" in capsys.readouterr().out
    weights = run / "weights" / "best.pt"
    assert weights.is_file() and (run / "weights" / "last.pt").is_file()
    assert len((run / "results.csv").read_text().strip().splitlines()) == 3  # header + 2 epochs

    assert main(["val", f"weights={weights}", f"data={npz}"]) == 0
    assert "loss:" in capsys.readouterr().out

    out_dir = tmp_path / "pred"
    assert main(["predict", f"weights={weights}", f"source={tmp_path / 'inputs.npy'}",
                 f"save_dir={out_dir}"]) == 0
    assert "10 predictions; saved 10 rows" in capsys.readouterr().out
    assert len((out_dir / "predictions.csv").read_text().splitlines()) == 11

    onnx_file = tmp_path / "m.onnx"
    assert main(["export", f"weights={weights}", f"data={npz}", f"file={onnx_file}"]) == 0
    assert onnx_file.is_file()


@pytest.mark.parametrize("module", ["hookline.cli", "hookline"])
def test_console_script_runs(tmp_path, module):
    result = subprocess.run([sys.executable, "-m", module, "trian"], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 2 and "Did you mean train?" in result.stderr


CRASH = {"after": None}


def crashing_cnn():
    """digits_cnn whose training forward raises after CRASH["after"] batches (a crash)."""
    from hookline.demo import digits_cnn
    model = digits_cnn()
    seen = [0]

    def count(module, inputs):
        if module.training:
            seen[0] += 1
            if CRASH["after"] is not None and seen[0] > CRASH["after"]:
                raise Crash(f"training batch {seen[0]}")
    model.register_forward_pre_hook(count)
    return model


def train(npz, run, *words):
    return main(["train", f"data={npz}", f"save_dir={run}", "batch_size=16", "verbose=0",
                 "plots=False", *words])


def csv_epochs(run):
    lines = (run / "results.csv").read_text().strip().splitlines()
    return [int(line.split(",")[0]) for line in lines[1:]]


def final_weights(run):
    from hookline.checkpoint import load_weights
    return load_weights(run / "weights" / "last.pt")["model"]


def assert_same(weights, expected):
    import torch
    assert [name for name in expected if not torch.equal(weights[name], expected[name])] == []


def test_resume_true_extends_a_finished_run(tmp_path, npz, capsys):
    run, reference = tmp_path / "run", tmp_path / "reference"
    assert train(npz, run, "epochs=2", "lr=0.01", "seed=3") == 0
    # the run's own options come from its args.yaml: only what changes is given
    assert main(["train", f"save_dir={run}", "epochs=4", "resume=True"]) == 0
    assert csv_epochs(run) == [0, 1, 2, 3]  # continued at epoch 2: no epoch twice
    assert train(npz, reference, "epochs=4", "lr=0.01", "seed=3") == 0
    assert_same(final_weights(run), final_weights(reference))  # as if never interrupted
    import yaml
    recorded = yaml.safe_load((run / "args.yaml").read_text())
    assert recorded["epochs"] == 4 and recorded["lr"] == 0.01 and recorded["seed"] == 3
    assert recorded["save_dir"] == str(run) and recorded["resume"] is False
    # a damaged record is a one-line error naming the file, and the run is left as it was
    (run / "args.yaml").write_text((run / "args.yaml").read_text() + "bogus: 1\n")
    before = (run / "weights" / "last.pt").read_bytes()
    assert main(["train", f"save_dir={run}", "epochs=5", "resume=True"]) == 2
    err = capsys.readouterr().err
    assert f"unknown option 'bogus' for train (reading {run / 'args.yaml'}" in err
    assert len(err.strip().splitlines()) == 1
    assert (run / "weights" / "last.pt").read_bytes() == before


def test_a_refused_rerun_leaves_the_runs_options_as_they_were(tmp_path, npz, capsys):
    run = tmp_path / "run"
    assert train(npz, run, "epochs=2", "seed=0") == 0
    recorded = (run / "args.yaml").read_bytes()
    # the checkpoint refuses another seed: one line, exit status 2, and args.yaml untouched
    assert main(["train", f"save_dir={run}", "resume=True", "seed=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hookline: error: checkpoint ")
    assert "seed=1 but the checkpoint's run used seed=0" in err[0]
    assert (run / "args.yaml").read_bytes() == recorded
    # so the plain resume afterwards continues with the run's own options
    assert main(["train", f"save_dir={run}", "resume=True", "epochs=3"]) == 0
    assert csv_epochs(run) == [0, 1, 2]
    import yaml
    assert yaml.safe_load((run / "args.yaml").read_text())["epochs"] == 3


def test_resume_from_a_checkpoint_inside_a_run_reads_that_runs_options(tmp_path, npz,
                                                                       monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run, reference = tmp_path / "run", tmp_path / "reference"
    assert train(npz, run, "epochs=2", "lr=0.01", "seed=3") == 0
    outside = tmp_path / "kept" / "latest.ckpt"  # the same file, outside any run folder
    outside.parent.mkdir()
    outside.write_bytes((run / "backup" / "latest.ckpt").read_bytes())
    # only the checkpoint and what changes: the data, lr, seed and folder are the run's
    assert main(["train", f"resume={run / 'backup' / 'latest.ckpt'}", "epochs=4"]) == 0
    assert csv_epochs(run) == [0, 1, 2, 3]  # continued in its own folder, appended
    assert not (tmp_path / "runs").exists()  # no new run folder
    assert train(npz, reference, "epochs=4", "lr=0.01", "seed=3") == 0
    assert_same(final_weights(run), final_weights(reference))
    import yaml
    recorded = yaml.safe_load((run / "args.yaml").read_text())
    assert recorded["epochs"] == 4 and recorded["lr"] == 0.01 and recorded["resume"] is False
    # outside a run folder there is no record to read: the options given are the run's, in
    # a new folder (whose CSVLogger is not the one the checkpoint holds state for)
    with pytest.warns(RuntimeWarning, match=r"holds state for callbacks this run does not "
                                            r"have \(CSVLogger\["):
        assert main(["train", f"resume={outside}", f"data={npz}", "batch_size=16",
                     "verbose=0", "plots=False", "epochs=3", "lr=0.01", "seed=3"]) == 0
    assert csv_epochs(tmp_path / "runs" / "train") == [2]
    assert yaml.safe_load((tmp_path / "runs" / "train" / "args.yaml").read_text())["lr"] == 0.01
    # another tool's args.yaml above a checkpoint: a one-line error naming it, with a fix
    # that keeps that file
    foreign = tmp_path / "detect" / "train"
    (foreign / "weights").mkdir(parents=True)
    (foreign / "args.yaml").write_text("task: detect\nmode: train\n")
    (foreign / "weights" / "last.ckpt").write_bytes(outside.read_bytes())
    assert main(["train", f"resume={foreign / 'weights' / 'last.ckpt'}", "epochs=3"]) == 2
    err = capsys.readouterr().err
    assert f"unknown option 'task' for train (reading {foreign / 'args.yaml'}" in err
    assert "resume from a copy of the checkpoint outside that folder" in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(path.name for path in foreign.rglob("*")) == ["args.yaml", "last.ckpt",
                                                                 "weights"]


def test_resume_true_continues_after_a_crash_and_a_plain_rerun_starts_anew(tmp_path, npz):
    from hookline.checkpoint import read_checkpoint_info
    run, reference = tmp_path / "run", tmp_path / "reference"
    model = "model=test_cli:crashing_cnn"
    # a callback from a spec: the resumed run builds it again (its state comes back with it)
    stopper = "callbacks=[{class_path: EarlyStopping, init_args: {patience: 2, min_delta: 9}}]"
    CRASH["after"] = 10  # 4 batches per epoch: dies in epoch 2, after 2 backups
    try:
        with pytest.raises(Crash):
            train(npz, run, model, "epochs=6", stopper)
    finally:
        CRASH["after"] = None
    assert csv_epochs(run) == [0, 1]
    # nothing repeated: the model, data, batch size, epochs and callbacks are the run's
    assert main(["train", f"save_dir={run}", "resume=True"]) == 0
    # EarlyStopping came back: with min_delta=9 no epoch improves on the first, so patience=2
    # stops after epoch 2, the epoch the crash cut short
    assert csv_epochs(run) == [0, 1, 2]
    assert train(npz, reference, "epochs=6", stopper) == 0
    assert csv_epochs(reference) == [0, 1, 2]
    assert_same(final_weights(run), final_weights(reference))
    # without resume= the same command is a new run, in a new folder: run2
    assert train(npz, run, model, "epochs=1") == 0
    assert csv_epochs(run) == [0, 1, 2] and csv_epochs(tmp_path / "run2") == [0]
    # exist_ok=True reuses the folder, and still starts anew: old backups are not resumed
    assert train(npz, run, model, "epochs=1", "exist_ok=True") == 0
    assert csv_epochs(run) == [0]
    assert read_checkpoint_info(run / "backup" / "latest.ckpt")["epoch"] == 0


def test_a_resume_with_another_lr_is_refused_before_anything_is_written(tmp_path, npz, capsys):
    """The backup restores the optimizer's state, rate included: lr=0.5 would be written into
    args.yaml and not used."""
    run = tmp_path / "run"
    assert train(npz, run, "epochs=2", "lr=0.01") == 0
    recorded, backup = (run / "args.yaml").read_bytes(), (run / "backup/latest.ckpt").read_bytes()
    assert main(["train", f"save_dir={run}", "resume=True", "epochs=3", "lr=0.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"lr=0.5 but the run being resumed ({run}) trained with lr=0.01" \
        in err[0]
    assert f"resume without lr=, or start a new run from its weights with that rate: " \
           f"hookline train weights={run / 'weights' / 'last.pt'} lr=0.5" in err[0]
    assert (run / "args.yaml").read_bytes() == recorded and csv_epochs(run) == [0, 1]
    assert (run / "backup/latest.ckpt").read_bytes() == backup
    # the run's own rate, repeated, is no conflict
    assert main(["train", f"save_dir={run}", "resume=True", "epochs=3", "lr=0.01"]) == 0
    assert csv_epochs(run) == [0, 1, 2]


# --- help, typed options, callbacks from YAML ----------------------------------------------
def _option_line(text, name):
    return next((line for line in text.splitlines() if line.split()[:1] == [name]), None)


@pytest.mark.parametrize("task", list(TASKS))
def test_help_lists_every_option_with_its_type_default_and_help(task, capsys):
    assert main([task, "--help"]) == 0
    shown = capsys.readouterr().out
    assert shown == task_help(task) + "\n"
    hints = typing.get_type_hints(TASKS[task])
    for parameter in inspect.signature(TASKS[task]).parameters.values():
        line = _option_line(shown, parameter.name)
        assert line is not None, f"{task} --help does not list {parameter.name}"
        assert type_name(hints[parameter.name]) in line and str(parameter.default) in line
        assert option_help(task, parameter.name) in line
    assert task_help(task) in usage()  # hookline --help shows every task's options too


@pytest.mark.parametrize("task", list(TASKS))
def test_help_offers_none_only_where_the_option_takes_it(task):
    # demo's patience and seed, export's seed are plain ints: "(None: never)" was refused
    hints = typing.get_type_hints(TASKS[task])
    for name in inspect.signature(TASKS[task]).parameters:
        if "None" in option_help(task, name):
            assert type(None) in typing.get_args(hints[name]), (
                f"{task} --help offers None for {name}, whose type is {hints[name]}")


def test_each_tasks_help_names_the_folder_it_writes_to(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["predict", "--help"]) == 0
    line = _option_line(capsys.readouterr().out, "save_dir")
    assert "default runs/predict, then runs/predict2" in line and "runs/train" not in line
    assert main(["predict", "batch_size=512"]) == 0  # an untrained digits_cnn: quick
    capsys.readouterr()
    assert sorted(path.name for path in (tmp_path / "runs").iterdir()) == ["predict"]
    assert main(["train", "--help"]) == 0
    assert "default runs/train, then runs/train2" in _option_line(capsys.readouterr().out,
                                                                   "save_dir")


def test_a_resume_from_a_missing_checkpoint_makes_no_run_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "resume=maybe", "epochs=1", "verbose=0"]) == 2
    err = capsys.readouterr().err
    assert "resume='maybe': no such checkpoint file or folder" in err
    assert "resume=True for the newest run" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # no runs/train/args.yaml: the next run is runs/train


def test_top_level_help_through_the_console_script():
    result = subprocess.run([sys.executable, "-m", "hookline.cli", "--help"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0 and result.stdout == usage()
    assert "clip_grad_norm  float | None" in result.stdout


@pytest.mark.parametrize("words, message", [
    (["train", "optimizer=adamm"], ("optimizer=adamm is not allowed; use one of adam, adamw, "
                                    "sgd, rmsprop, adagrad. Did you mean adam?")),
    (["train", "epochs=many"], "epochs=many is not a valid int"),
    (["export", "format=onnxx"], "Did you mean onnx?"),
    (["train", "callbacks=[{class_path: EarlyStoping}]"],
     "no callback class 'EarlyStoping'; did you mean EarlyStopping?"),
    (["train", "callbacks=[{class_path: EarlyStopping, init_args: {patiense: 2}}]"],
     "EarlyStopping has no option 'patiense'; did you mean patience?"),
    (["train", "callbacks=[{class_path: EarlyStopping, init_args: {patience: -1}}]"],
     "EarlyStopping(patience=-1) is not allowed"),
    (["val", "weights=/nonexistent/best.pt"], "weights file /nonexistent/best.pt does not exist"),
    (["train", "model=nomodule:build"], "no module named 'nomodule'"),
])
def test_typed_values_are_checked_with_a_one_line_hint(words, message, capsys):
    assert main(words) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_freeze_takes_block_indexes_and_names():
    from hookline.cli.parser import parse_options
    assert parse_options("train", ["freeze=[0, 2]"])["freeze"] == [0, 2]  # Ultralytics' form
    assert parse_options("train", ["freeze=[0, conv1]"])["freeze"] == [0, "conv1"]


def test_a_folder_given_as_weights_is_named_a_folder_with_the_files_to_pass(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["val", f"weights={run.parent}"]) == 2  # no weights in it: the usual file
    assert (f"weights={tmp_path} is a folder, not a weights file; pass a file: e.g. "
            f"weights={tmp_path / 'weights' / 'best.pt'}") in capsys.readouterr().err
    (run / "weights").mkdir(parents=True)
    for name in ("best.pt", "last.pt"):
        save_weights(tiny_model(), run / "weights" / name)
    assert main(["val", f"weights={run}"]) == 2
    err = capsys.readouterr().err
    assert (f"weights={run} is a folder, not a weights file; pass a file: "
            f"weights={run / 'weights' / 'best.pt'} or weights={run / 'weights' / 'last.pt'}"
            ) in err and len(err.strip().splitlines()) == 1


def test_a_typo_in_the_yaml_file_gets_a_hint(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("ephocs: 3\n")
    assert main(["train", f"cfg={config}"]) == 2
    assert "unknown option 'ephocs' for train. Did you mean epochs?" in capsys.readouterr().err


def test_callbacks_and_loggers_come_from_yaml_and_from_words(tmp_path, npz):
    run = tmp_path / "run"
    config = tmp_path / "run.yaml"
    # min_delta=100 on the training loss: no epoch improves, so patience=1 stops at epoch 1
    config.write_text(f"""
epochs: 6
callbacks:
  - class_path: EarlyStopping
    init_args: {{monitor: loss, patience: 1, min_delta: 100}}
loggers:
  - class_path: hookline.callbacks.CSVLogger
    init_args: {{filename: {tmp_path / "extra.csv"}}}
""")
    assert train(npz, run, f"cfg={config}") == 0
    assert csv_epochs(run) == [0, 1]
    assert len((tmp_path / "extra.csv").read_text().strip().splitlines()) == 3
    other = tmp_path / "other"
    assert train(npz, other, "epochs=6",
                 "callbacks=[{class_path: EarlyStopping, init_args: "
                 "{monitor: loss, patience: 2, min_delta: 100}}]") == 0
    assert csv_epochs(other) == [0, 1, 2]


# --- the validation split: recorded by train, reused by val and predict ----------------------
def logged_val_loss(run):
    header, *rows = (run / "results.csv").read_text().strip().splitlines()
    return float(rows[-1].split(",")[header.split(",").index("val_loss")])


def printed_loss(capsys):
    return printed_loss_of(capsys.readouterr().out)


def printed_loss_of(out):
    return float(out.split("loss: ")[1].split()[0])


def predicted_rows(run, capsys, *words):
    assert main(["predict", f"weights={run / 'weights/last.pt'}", f"save_dir={run / 'pred'}",
                 "exist_ok=True", *words]) == 0
    return int(capsys.readouterr().out.split()[0])


def test_val_and_predict_split_the_digits_as_training_did(tmp_path, capsys):
    """Trained with val_split=0.3 seed=5, val must see those held-out rows (its loss is the
    val_loss training logged), not the 0.2/seed 0 split, 3/4 of which training trained on."""
    run = tmp_path / "run"
    assert train("digits", run, "epochs=1", "val_split=0.3", "seed=5", "batch_size=64") == 0
    capsys.readouterr()
    weights = f"weights={run / 'weights/last.pt'}"
    assert main(["val", weights]) == 0
    assert printed_loss(capsys) == pytest.approx(logged_val_loss(run), abs=1e-4)
    assert main(["val", weights, "data=digits"]) == 0  # the same data, named: the same split
    assert printed_loss(capsys) == pytest.approx(logged_val_loss(run), abs=1e-4)
    assert main(["val", weights, "val_split=0.2", "seed=0"]) == 0  # the user's values win
    assert printed_loss(capsys) != pytest.approx(logged_val_loss(run), abs=1e-4)
    assert predicted_rows(run, capsys, "source=digits") == 1797 - int(1797 * 0.7)
    assert predicted_rows(run, capsys, "source=digits", "val_split=0.2") == 1797 - int(1797 * 0.8)


def test_weights_without_a_recorded_split_get_the_defaults(tmp_path, capsys):
    import torch

    from hookline.checkpoint import load_weights
    from hookline.cli.loading import BUILD_KEY
    run = tmp_path / "run"
    assert train("digits", run, "epochs=1", "val_split=0.3", "seed=5", "batch_size=64") == 0
    state = load_weights(run / "weights" / "last.pt")
    for key in ("data", "val_split", "seed"):  # as weights written before they were recorded
        del state[BUILD_KEY][key]
    old = tmp_path / "old.pt"
    torch.save(state, old)
    capsys.readouterr()
    assert main(["val", f"weights={old}"]) == 0
    assert main(["val", f"weights={old}", "data=digits", "val_split=0.2", "seed=0"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == out[1]
    assert main(["predict", f"weights={old}", f"save_dir={tmp_path / 'pred'}"]) == 0
    assert capsys.readouterr().out.startswith(f"{1797 - int(1797 * 0.8)} predictions")


@pytest.fixture
def npz_without_val(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, 1, 8, 8)).astype(np.float32)
    path = tmp_path / "noval.npz"
    np.savez(path, x=x, y=(x.reshape(80, -1).sum(axis=1) > 0).astype(np.int64))
    return path


def test_val_split_holds_out_rows_of_an_npz_file_without_x_val(tmp_path, npz_without_val, npz,
                                                               monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    assert train(npz_without_val.name, run, "epochs=1", "val_split=0.25", "seed=3") == 0
    capsys.readouterr()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the relative data= was recorded as an absolute path
    assert main(["val", f"weights={run / 'weights/last.pt'}"]) == 0
    assert printed_loss(capsys) == pytest.approx(logged_val_loss(run), abs=1e-4)
    # other data named: its own x_val, y_val; the recorded val_split is not a conflict there
    assert main(["val", f"weights={run / 'weights/last.pt'}", f"data={npz}"]) == 0
    # without val_split=, 0.2 is held out as for the digits
    assert train(npz_without_val, tmp_path / "default", "epochs=1") == 0
    assert "val_loss" in (tmp_path / "default" / "results.csv").read_text()
    # val_split=0: the whole file trained on, no validation
    assert train(npz_without_val, tmp_path / "whole", "epochs=1", "val_split=0") == 0
    assert "val_loss" not in (tmp_path / "whole" / "results.csv").read_text()


def test_a_val_split_or_seed_that_cannot_apply_is_an_error(tmp_path, npz, npz_without_val, capsys):
    (tmp_path / "split.py").write_text(DATA_FILE.format(npz=str(npz)))
    cases = [
        (["train", f"data={npz}", "val_split=0.3"],
         f"val_split=0.3 conflicts with {npz}'s own validation arrays x_val, y_val"),
        (["train", f"data={tmp_path / 'split.py'}:load", "val_split=0.3"],
         "the function returns its own (train, val)"),
        (["train", "data=digits", "val_split=1.5"], "val_split=1.5 must be between 0 and 1"),
        (["train", f"data={npz_without_val}", "val_split=0.99"],
         "val_split=0.99 of the 80 rows of"),
        (["val", "data=digits", "val_split=0"], "val_split=0.0 must be between 0 and 1"),
        (["predict", f"source={tmp_path / 'inputs.npy'}", "val_split=0.3"],
         "drop val_split="),
        (["predict", f"source={tmp_path / 'inputs.npy'}", "seed=4"],
         f"seed=4 cannot apply to source={tmp_path / 'inputs.npy'}: a .npy file's inputs"),
    ]
    for words, message in cases:
        extra = ["epochs=1", "verbose=0", f"save_dir={tmp_path / 'run'}"]
        assert main([*words, *extra] if words[0] == "train" else words) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (words, err)


# --- the loss and the inputs training recorded: reused by val and export ---------------------
REGRESSION = """
from torch import nn


def build():
    return nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 1))
"""


def test_val_scores_with_the_loss_training_recorded(tmp_path, monkeypatch, capsys):
    """Trained with loss=mse, val must report the run's val_loss, not cross-entropy (which
    gives -0.0 and an accuracy of 0 on one regression output)."""
    import torch

    from hookline.checkpoint import load_weights
    from hookline.cli.loading import BUILD_KEY
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reg.py").write_text(REGRESSION)
    x = np.random.default_rng(0).normal(size=(120, 3)).astype(np.float32)
    np.savez(tmp_path / "reg.npz", x=x, y=2 * x.sum(axis=1, keepdims=True))
    run = tmp_path / "run"
    assert train("reg.npz", run, "model=reg:build", "loss=mse", "epochs=2") == 0
    capsys.readouterr()
    weights = run / "weights" / "last.pt"
    assert main(["val", f"weights={weights}"]) == 0
    out = capsys.readouterr().out
    assert printed_loss_of(out) == pytest.approx(logged_val_loss(run), abs=1e-4)
    assert "accuracy" not in out
    assert main(["val", f"weights={weights}", "loss=l1"]) == 0  # the user's loss= wins
    assert printed_loss_of(capsys.readouterr().out) != pytest.approx(logged_val_loss(run),
                                                                     abs=1e-4)
    state = load_weights(weights)
    del state[BUILD_KEY]["loss"]  # as weights written before the loss was recorded
    torch.save(state, tmp_path / "old.pt")
    assert main(["val", f"weights={tmp_path / 'old.pt'}"]) == 0
    assert "accuracy:" in capsys.readouterr().out  # today's default: cross_entropy


def tiny_shapes():
    """The shapes data set, small enough for a one-epoch run in a few seconds."""
    from hookline.detection import load_shapes_data
    return load_shapes_data(count=40, batch_size=8)


def test_val_and_export_of_the_detector_train_trains(tmp_path, monkeypatch, capsys):
    """The detector scores itself (its validation_step: loss, box, cls, obj), and its export
    traces the 3x32x32 image best.pt records, not a digits-shaped input."""
    import onnxruntime

    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    assert train("test_cli:tiny_shapes", run, "model=shapes_detector", "epochs=1") == 0
    capsys.readouterr()
    header, *rows = (run / "results.csv").read_text().strip().splitlines()
    logged = dict(zip(header.split(","), rows[-1].split(",")))
    weights = f"weights={run / 'weights' / 'best.pt'}"
    assert main(["val", weights]) == 0
    shown = dict(part.split(": ") for part in capsys.readouterr().out.strip().split(" - "))
    assert sorted(shown) == ["box", "cls", "loss", "obj"]
    for key, value in shown.items():
        assert float(value) == pytest.approx(float(logged[f"val_{key}" if key == "loss" else
                                                          f"val/{key}"]), abs=1e-4)
    onnx_file = tmp_path / "detector.onnx"
    assert main(["export", weights, "format=onnx", f"file={onnx_file}"]) == 0
    session = onnxruntime.InferenceSession(str(onnx_file))
    image = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)
    outputs = session.run(None, {session.get_inputs()[0].name: image})
    assert [output.shape[0] for output in outputs] == [1, 1, 1]
    # data= batches the detector's own training_step unpacks: a one-line refusal, not a crash
    assert main(["export", weights, "format=onnx", "data=test_cli:tiny_shapes"]) == 2
    assert "drop data= to export with the input recorded in weights=" in capsys.readouterr().err


def digit_loaders():
    """Digits-shaped batches from DataLoaders: data= a function may return loaders."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(48, 1, 8, 8, generator=generator), torch.randint(0, 10, (48,))
    return (DataLoader(TensorDataset(x[:32], y[:32]), batch_size=8),
            DataLoader(TensorDataset(x[32:], y[32:]), batch_size=8))


def test_export_takes_its_input_from_the_first_batch_of_a_loader(tmp_path, capsys):
    run = tmp_path / "run"
    assert train("test_cli:digit_loaders", run, "epochs=1") == 0
    onnx_file = tmp_path / "m.onnx"
    assert main(["export", f"weights={run / 'weights' / 'best.pt'}",
                 "data=test_cli:digit_loaders", f"file={onnx_file}"]) == 0
    assert onnx_file.is_file()


# --- run folders ----------------------------------------------------------------------------
def test_each_run_gets_a_new_folder_unless_exist_ok_or_resume(tmp_path, npz, monkeypatch):
    monkeypatch.chdir(tmp_path)
    words = ["train", f"data={npz}", "batch_size=16", "verbose=0", "plots=False"]
    assert main([*words, "epochs=1"]) == 0
    first = (tmp_path / "runs/train/weights/best.pt").read_bytes()
    assert main([*words, "epochs=1", "seed=1"]) == 0
    assert (tmp_path / "runs/train/weights/best.pt").read_bytes() == first  # not overwritten
    assert (tmp_path / "runs/train2/weights/best.pt").is_file()
    # the newest run: train2, with the options it was started with (its seed included)
    assert main([*words, "epochs=3", "seed=1", "resume=True"]) == 0
    assert csv_epochs(tmp_path / "runs/train2") == [0, 1, 2]
    assert not (tmp_path / "runs/train3").exists()
    assert main([*words, "epochs=1", "exist_ok=True"]) == 0
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["train", "train2"]


def test_a_new_run_in_an_existing_folder_replaces_its_tensorboard_events(tmp_path, npz):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    words = ["train", f"data={npz}", f"save_dir={tmp_path / 'run'}", "batch_size=16",
             "verbose=0", "plots=False", "tensorboard=True"]
    assert main([*words, "epochs=2", "lr=0.01"]) == 0
    assert main([*words, "epochs=1", "exist_ok=True"]) == 0
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    # before: the first run's epochs 0 and 1 were still there, drawn with the new run's
    assert [event.step for event in events.Scalars("epoch/loss")] == [0]
    assert csv_epochs(tmp_path / "run") == [0]


# --- the user's own model and data files ----------------------------------------------------
MODEL_FILE = """
from torch import nn


def build():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 12), nn.ReLU(), nn.Linear(12, 2))
"""


DATA_FILE = """
import numpy as np


def load():
    arrays = np.load({npz!r})
    return (arrays["x"], arrays["y"]), (arrays["x_val"], arrays["y_val"])
"""


def _console(args, cwd):
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run([str(Path(sys.executable).with_name("hookline")), *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300, check=False)


def test_a_model_file_in_the_current_folder_and_weights_that_rebuild_it(tmp_path, npz):
    project = tmp_path / "project"
    project.mkdir()
    (project / "mymodel.py").write_text(MODEL_FILE)
    (project / "mydata.py").write_text(DATA_FILE.format(npz=str(npz)))
    words = ["epochs=1", "batch_size=16", "verbose=0", "plots=False", "exist_ok=True"]
    for model, data in (("mymodel:build", "mydata:load"), ("mymodel.py:build", str(npz))):
        done = _console(["train", f"model={model}", f"data={data}", *words], project)
        assert done.returncode == 0, done.stderr
        assert "done: loss:" in done.stdout
        # from here, with only the weights: the recorded data (mydata's file, or the .npz)
        assert main(["val", f"weights={project / 'runs/train/weights/best.pt'}"]) == 0
    weights = project / "runs/train/weights/best.pt"
    # elsewhere, with only the weights: the model (and, for ONNX, its input) come from them
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    onnx_file = elsewhere / "m.onnx"
    assert main(["export", f"weights={weights}", f"file={onnx_file}"]) == 0
    assert onnx_file.is_file()
    assert main(["predict", f"weights={weights}", f"source={tmp_path / 'inputs.npy'}",
                 f"save_dir={elsewhere / 'pred'}"]) == 0
    assert main(["val", f"weights={weights}", f"data={npz}"]) == 0


def test_user_errors_after_parsing_print_one_line_and_exit_2(tmp_path, npz):
    import torch
    device = "tpu" if torch.cuda.is_available() else "cuda"
    cases = [
        (["val", "weights=missing.pt"], "weights file missing.pt does not exist"),
        (["export", f"data={npz}", "format=tflite"], "format=tflite is not allowed"),
        (["train", f"data={npz}", f"device={device}", "epochs=1"], f"device {device!r}"
         if device == "cuda" else "unknown device 'tpu'"),
    ]
    for words, message in cases:
        done = _console(words, tmp_path)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("hookline: error: "), done.stderr
        assert message in lines[0]


def test_hookline_traceback_1_raises_the_error_instead(monkeypatch):
    from hookline.cli import UsageError
    monkeypatch.setenv("HOOKLINE_TRACEBACK", "1")
    with pytest.raises(UsageError, match="weights file missing.pt does not exist"):
        main(["val", "weights=missing.pt"])


def test_a_bug_in_the_users_model_file_keeps_its_traceback(tmp_path, npz, monkeypatch):
    """A TypeError raised by the user's own code is a bug to show where it is, not a worded
    refusal to print as one line."""
    (tmp_path / "buggy.py").write_text(textwrap.dedent("""
        def build(**options):
            raise TypeError("a bug in the user's build()")
    """))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(TypeError, match="a bug in the user's build"):
        main(["train", "model=buggy:build", f"data={npz}", "epochs=1", "verbose=0",
              "plots=False"])
