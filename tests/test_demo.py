"""The demo, run as a user runs it: `hookline demo` trains on bundled digits, no download."""

from __future__ import annotations

import csv
import os
import subprocess
import sys


def test_demo_reaches_95_percent_and_leaves_a_run_folder(tmp_path):
    run = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "hookline.cli", "demo", f"save_dir={run}"],
                          capture_output=True, text=True, timeout=300,
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
