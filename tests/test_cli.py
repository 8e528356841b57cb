"""The command line: tasks, key=value options, a YAML config, clear usage errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from hookline.cli import main
from hookline.events import EVENTS
from hookline.testing import Crash


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


def test_console_script_runs(tmp_path):
    result = subprocess.run([sys.executable, "-m", "hookline.cli", "trian"], capture_output=True,
                            text=True, timeout=60)
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


def test_resume_true_extends_a_finished_run(tmp_path, npz):
    run, reference = tmp_path / "run", tmp_path / "reference"
    assert train(npz, run, "epochs=2") == 0
    assert train(npz, run, "epochs=4", "resume=True") == 0
    assert csv_epochs(run) == [0, 1, 2, 3]  # continued at epoch 2: no epoch twice
    assert train(npz, reference, "epochs=4") == 0
    assert_same(final_weights(run), final_weights(reference))  # as if never interrupted


def test_resume_true_continues_after_a_crash_and_a_plain_rerun_starts_anew(tmp_path, npz):
    from hookline.checkpoint import read_checkpoint_info
    run, reference = tmp_path / "run", tmp_path / "reference"
    model = "model=test_cli:crashing_cnn"
    CRASH["after"] = 10  # 4 batches per epoch: dies in epoch 2, after 2 backups
    try:
        with pytest.raises(Crash):
            train(npz, run, model, "epochs=4")
    finally:
        CRASH["after"] = None
    assert csv_epochs(run) == [0, 1]
    assert train(npz, run, model, "epochs=4", "resume=True") == 0
    assert csv_epochs(run) == [0, 1, 2, 3]
    assert train(npz, reference, "epochs=4") == 0
    assert_same(final_weights(run), final_weights(reference))
    # without resume= the same command is a new run: old backups are not resumed
    assert train(npz, run, model, "epochs=1") == 0
    assert csv_epochs(run) == [0]
    assert read_checkpoint_info(run / "backup" / "latest.ckpt")["epoch"] == 0
