"""The look of ``verbose=1`` in a real terminal: tmux runs a training, the pane is captured.

During an epoch the bar shows the running loss and each loss part, and an ETA; during
validation a second bar counts the validation batches; each finished epoch leaves its line
with the epoch's metrics.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

CHILD = Path(__file__).with_name("console_child.py")


def _wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path.name} did not appear within {timeout} s")
        time.sleep(0.05)


def _capture(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], check=True,
                          capture_output=True, text=True).stdout


@pytest.mark.parametrize("flavour", ["tqdm", "rich"])
def test_the_bar_in_a_real_terminal(tmp_path: Path, flavour: str) -> None:
    assert shutil.which("tmux"), "tmux is part of the machine image (apt: tmux)"
    session = f"hookline-{uuid.uuid4().hex[:8]}"
    command = f"{sys.executable} {CHILD} {flavour} {tmp_path}; sleep 30"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "30",
                    command], check=True)
    try:
        _wait_for(tmp_path / "train")
        time.sleep(0.3)
        during_epoch = _capture(session)
        (tmp_path / "go-train").touch()
        _wait_for(tmp_path / "val")
        time.sleep(0.3)
        during_validation = _capture(session)
        (tmp_path / "go-val").touch()
        _wait_for(tmp_path / "done")
        time.sleep(0.5)
        finished = _capture(session)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
    bar = next(line for line in during_epoch.splitlines() if "Epoch 1/2" in line)
    assert "loss=" in bar and "ce=" in bar and "l2=" in bar, during_epoch
    assert ("<00:" in bar) if flavour == "tqdm" else ("eta 0:00:" in bar), bar
    assert "validating" in during_validation, during_validation
    summaries = [line for line in finished.splitlines() if "val_loss: " in line]
    assert [line.split()[:2] for line in summaries] == [["Epoch", "1/2"], ["Epoch", "2/2"]] \
        or [line.split(":")[0] for line in summaries] == ["Epoch 1/2", "Epoch 2/2"], finished
    assert all("train/ce: " in line and "val/l2: " in line for line in summaries), finished
    assert "validating" not in finished  # the validation bar leaves no line behind
