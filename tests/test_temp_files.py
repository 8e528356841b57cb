"""Temp files of atomic writes: a kill leaves one behind, the next start removes it, and a
temp file that a live writer is writing is never removed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch

import hookline
import hookline.callbacks
from hookline.callbacks import BackupAndRestore, ModelCheckpoint
from hookline.checkpoint import CheckpointWriter, load_weights, remove_stale_temps
from hookline.files import atomic, temp_files
from hookline.files.temp_files import TEMP_SUFFIX

CHILD = Path(__file__).with_name("temp_file_child.py")


def temps(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"*{TEMP_SUFFIX}")) if folder.exists() else []


def fit(callback: object, epochs: int = 1, **options: Any) -> None:
    x, y = torch.randn(32, 256), torch.randn(32, 256)
    hookline.Trainer(torch.nn.Linear(256, 256), loss="mse", train_data=(x, y), batch_size=16,
                     epochs=epochs, callbacks=[callback], default_callbacks=False, verbose=0,
                     device="cpu", seed=0, **options).fit()


def wait_for(marker: Path, child: subprocess.Popen[bytes], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not marker.exists():
        if child.poll() is not None:
            raise AssertionError(f"the child ended ({child.returncode}) before its write: "
                                 f"{child.stderr.read().decode() if child.stderr else ''}")
        if time.monotonic() > deadline:
            child.kill()
            raise AssertionError("the child never reached its checkpoint write")
        time.sleep(0.05)


@pytest.mark.parametrize("kind", ["model_checkpoint", "backup"])
def test_a_kill_mid_write_leaves_a_temp_file_that_the_next_start_removes(tmp_path: Path,
                                                                        kind: str) -> None:
    folder, marker = tmp_path / "ckpt", tmp_path / "marker"
    child = subprocess.Popen([sys.executable, str(CHILD), kind, str(folder), str(marker)],
                             stderr=subprocess.PIPE)
    try:
        wait_for(marker, child)
        left = temps(folder)
        assert len(left) == 1 and left[0].stat().st_size > 0  # half-written, mid-write
        assert remove_stale_temps(folder) == []  # its writer is alive: kept
        assert left[0].exists()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert temps(folder) == left  # the kill left it behind

    callback = (ModelCheckpoint(dirpath=folder, filename="m-{epoch}")
                if kind == "model_checkpoint" else BackupAndRestore(folder))
    seen_at_start: list[list[Path]] = []
    probe = hookline.LambdaCallback(on_train_batch_start=lambda t: seen_at_start.append(
        temps(folder)))
    x, y = torch.randn(32, 256), torch.randn(32, 256)
    hookline.Trainer(torch.nn.Linear(256, 256), loss="mse", train_data=(x, y), batch_size=16,
                     epochs=1, callbacks=[callback, probe], default_callbacks=False, verbose=0,
                     device="cpu", seed=0).fit()
    assert seen_at_start[0] == []  # removed when the restarted run started
    assert temps(folder) == []


def test_a_temp_file_a_live_writer_of_this_process_is_writing_is_never_removed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write_all = atomic._write_all
    half_way, release = threading.Event(), threading.Event()

    def paused(handle: int, chunk: bytes | bytearray | memoryview) -> None:
        view = memoryview(chunk).cast("B")
        real_write_all(handle, view[: len(view) // 2])
        half_way.set()
        release.wait(60)
        real_write_all(handle, view[len(view) // 2:])

    monkeypatch.setattr(atomic, "_write_all", paused)
    model = torch.nn.Linear(256, 256)
    writer = CheckpointWriter()
    writer.save_weights(model, tmp_path / "w.pt")
    assert half_way.wait(60)
    live = temps(tmp_path)
    assert len(live) == 1
    assert remove_stale_temps(tmp_path) == [] and remove_stale_temps(tmp_path / "w.pt") == []
    ModelCheckpoint(dirpath=tmp_path).on_train_start(type("T", (), {"save_dir": None})())
    assert live[0].exists()  # a start in the same process left the live write alone
    release.set()
    writer.close()
    assert torch.equal(load_weights(tmp_path / "w.pt")["model"]["weight"], model.weight)
    assert temps(tmp_path) == []


def test_a_temp_file_of_this_process_that_no_write_holds_is_stale(tmp_path: Path) -> None:
    name = Path(temp_files.new_temp_name(tmp_path / "a.pt"))
    name.write_bytes(b"left by a write of this process that died with its thread")
    (tmp_path / "a.pt").write_bytes(b"final")
    assert remove_stale_temps(tmp_path) == [name]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt"]  # final files untouched


def test_a_temp_file_from_another_host_is_removed_only_once_it_is_old(tmp_path: Path) -> None:
    ours = Path(temp_files.new_temp_name(tmp_path / "a.pt")).name
    host = temp_files._HOST
    other = "0" * 6 if host != "0" * 6 else "1" * 6
    fresh = tmp_path / ours.replace(f"-{host}-", f"-{other}-")
    old = tmp_path / fresh.name.replace(".a.pt.", ".b.pt.")
    for path in (fresh, old):
        path.write_bytes(b"x")
    stale_time = time.time() - temp_files.FOREIGN_STALE_SECONDS - 60
    os.utime(old, (stale_time, stale_time))
    assert remove_stale_temps(tmp_path) == [old]
    assert fresh.exists()


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: no process has this pid now (until the system reuses it)
    return child.pid


def stale_temp_beside(target: Path) -> Path:
    """A temp file as a killed process with ``dead_pid()`` would have left beside ``target``."""
    live = Path(temp_files.new_temp_name(target)).name
    temp = target.parent / live.replace(f".{os.getpid()}-", f".{dead_pid()}-", 1)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp.write_bytes(b"half a file")
    return temp


def test_the_trainers_weights_and_the_csv_log_lose_their_stale_temp_files(tmp_path: Path) -> None:
    weights_temp = stale_temp_beside(tmp_path / "run" / "weights" / "last.pt")
    csv_temp = stale_temp_beside(tmp_path / "log.csv")
    fit(hookline.callbacks.CSVLogger(tmp_path / "log.csv"), save_dir=tmp_path / "run")
    assert not weights_temp.exists() and not csv_temp.exists()
    assert (tmp_path / "run" / "weights" / "last.pt").exists()
