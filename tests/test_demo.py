"""The demo, run as a user runs it: `hookline demo` trains on bundled digits, no download."""

from __future__ import annotations

import csv
import os
import subprocess
import sys


def test_demo_reaches_95_percent_and_leaves_a_run_folder(tmp_path):
    run = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "hookline.cli", "demo", f"save_dir={run}"],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "MPLBACKEND": "Agg"})
    assert done.returncode == 0, done.stderr[-3000:]
    epoch_lines = [line for line in done.stdout.splitlines() if line.startswith("Epoch ")]
    assert len(epoch_lines) >= 5  # one progress line per epoch (output is not a terminal)
    with open(run / "results.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == len(epoch_lines)
    assert max(float(row["val_accuracy"]) for row in rows) >= 0.95
    for name in ("weights/best.pt", "weights/last.pt", "checkpoints/last.pt", "results.png"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert (run / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_digits_load_without_importing_sklearn_and_match_its_loader(tmp_path):
    """scikit-learn's import takes ~1.7 s, most of a CLI command's start on the digits."""
    import numpy as np
    import torch
    from sklearn.datasets import load_digits

    script = ("import sys, torch; from hookline.demo import load_digits_data; "
              "(x, y), (xv, yv) = load_digits_data(); "
              "assert not [m for m in sys.modules if m.startswith('sklearn')]; "
              "torch.save([x, y, xv, yv], sys.argv[1])")
    saved = tmp_path / "digits.pt"
    done = subprocess.run([sys.executable, "-c", script, saved], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    x, y, x_val, y_val = torch.load(saved)
    digits = load_digits()
    order = torch.randperm(1797, generator=torch.Generator().manual_seed(0))
    expected_x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1)[order] / 16.0
    assert torch.equal(torch.cat([x, x_val]), expected_x)
    assert torch.equal(torch.cat([y, y_val]), torch.tensor(digits.target)[order])
    assert len(x) == int(1797 * 0.8) and np.array_equal(np.unique(y.numpy()), np.arange(10))
