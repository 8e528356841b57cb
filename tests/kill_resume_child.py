"""The child of tests/test_kill_resume.py: trains a tiny model and dies by SIGKILL where told.

Two ways to start it:

* ``python kill_resume_child.py run '<json config>'``: one training process, a fresh interpreter.
* ``python kill_resume_child.py serve``: a fork server. It imports torch and hookline once (the
  ~2 s that dominate a tiny run), then for each JSON config line on stdin forks one training
  process, and answers with one JSON line ``{"status": N}``: the exit code, or minus the
  signal that ended it (-9 for SIGKILL; 124 for a child that hung for 120 s). Every training
  process is a real OS process that really receives SIGKILL; the server only spares the
  interpreter start and the imports.

The config: ``dir`` (the run's folder), ``data`` ("arrays", or "loader": a shuffling DataLoader
whose dataset augments with torch and numpy random draws), ``save_freq`` ("epoch" or N batches),
``epochs``, ``accumulate`` and ``kill``:

* ``{"at": "<event>", "n": k}``: SIGKILL at the k-th firing of that event in this process
  (after the metrics loggers and before the backup at the same event);
* ``{"at": "write", "n": k}``: half-way through the k-th os.write into a checkpoint's temp file;
* ``{"at": "replace", "n": k}``: just before the k-th rename of a complete temp file over
  latest.ckpt;
* ``{"at": "rotate", "n": k}``: just after the k-th rename of latest.ckpt to previous.ckpt,
  so no latest.ckpt exists at the moment of death;
* ``{"at": "timer", "event": "<event>", "n": k, "delay": s}`` (fork server only): at the k-th
  firing of the event the child marks itself ready and keeps training, slowed a little; the
  server kills it ``delay`` seconds later, wherever it then is.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)  # never reached: SIGKILL to oneself is delivered at once


def _install_io_kills(kill: dict[str, Any]) -> None:
    """Die inside the checkpoint writer's os.write / os.replace calls."""
    at, wanted = kill["at"], kill["n"]
    count = [0]
    if at == "write":
        real_write = os.write

        def write(fd: int, data: Any) -> int:
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                target = ""
            if ".latest.ckpt." in target:
                count[0] += 1
                if count[0] == wanted:
                    real_write(fd, bytes(data[:max(len(data) // 2, 1)]))
                    _die()
            return real_write(fd, data)
        os.write = write
    elif at in ("replace", "rotate"):
        real_replace = os.replace

        def replace(source: Any, destination: Any) -> None:
            name = Path(source).name
            if at == "replace" and name.startswith(".latest.ckpt."):
                count[0] += 1
                if count[0] == wanted:
                    _die()
            if at == "rotate" and name == "latest.ckpt":
                count[0] += 1
                if count[0] == wanted:
                    real_replace(source, destination)
                    _die()
            real_replace(source, destination)
        os.replace = replace


def train(config: dict[str, Any]) -> None:
    import numpy as np
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, Dataset

    import hookline
    from hookline.callbacks import BackupAndRestore, CSVLogger
    from hookline.checkpoint import save_weights
    from hookline.testing import tiny_data

    torch.set_num_threads(1)
    run = Path(config["dir"])
    kill = config.get("kill") or {}
    if kill.get("at") in ("write", "replace", "rotate"):
        _install_io_kills(kill)

    class Augmented(Dataset):
        def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
            self.x, self.y = x, y

        def __len__(self) -> int:
            return len(self.x)

        def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
            noise = torch.randn(self.x.shape[1]) * 0.1 + float(np.random.uniform(-0.05, 0.05))
            return self.x[i] + noise, self.y[i]

    class KillSwitch(hookline.Callback):
        order = 120  # after the loggers and History, before BackupAndRestore (200)

        def __init__(self, event: str, n: int, action: Any) -> None:
            self.event, self.n, self.action, self.seen = event, n, action, 0

        def hookline_handlers(self) -> dict[str, Any]:
            return {self.event: self.fire}

        def fire(self, engine: Any) -> None:
            self.seen += 1
            if self.seen == self.n:
                self.action()

    slow = [False]

    def mark_ready() -> None:
        (run / "ready").touch()
        slow[0] = True

    def pace(engine: Any) -> None:
        if slow[0]:
            time.sleep(0.002)  # keep training long enough for the timer to land anywhere

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.25), nn.Linear(16, 3))
    x, y = tiny_data(64)
    val = tiny_data(32, seed=1)
    data: Any = (x, y)
    if config["data"] == "loader":
        data = DataLoader(Augmented(x, y), batch_size=8, shuffle=True)
    callbacks: list[Any] = [BackupAndRestore(run / "backup", save_freq=config["save_freq"]),
                            CSVLogger(run / "log.csv")]
    if kill.get("at") == "timer":
        callbacks.append(KillSwitch(kill["event"], kill["n"], mark_ready))
        callbacks.append(hookline.LambdaCallback(on_train_batch_end=pace, on_val_batch_end=pace))
    elif kill.get("at", "").startswith("on_") or kill.get("at") in ("teardown",
                                                                     "optimizer_step"):
        callbacks.append(KillSwitch(kill["at"], kill["n"], _die))
    trainer = hookline.Trainer(
        model, optimizer="adam", loss="cross_entropy", train_data=data, val_data=val,
        epochs=config["epochs"], batch_size=8, seed=7, accumulate=config.get("accumulate", 1),
        callbacks=callbacks, verbose=0, device="cpu")
    trainer.fit()
    save_weights(model, run / "final.pt")


def _serve() -> None:
    import numpy  # noqa: F401
    import torch._dynamo  # what the first optimizer imports (1.5 s)
    import torch.utils.data  # noqa: F401

    import hookline  # imported once, before forking
    import hookline.callbacks  # noqa: F401
    assert threading.active_count() == 1, "forking needs a single-threaded server"

    for line in sys.stdin:
        config = json.loads(line)
        run = Path(config["dir"])
        run.mkdir(parents=True, exist_ok=True)
        (run / "ready").unlink(missing_ok=True)
        pid = os.fork()
        if pid == 0:
            _child(config, run)
        status = _watch(pid, config, run)
        sys.stdout.write(json.dumps({"status": status}) + "\n")
        sys.stdout.flush()


def _child(config: dict[str, Any], run: Path) -> None:
    code = 1
    try:
        log = os.open(run / "child.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        train(config)
        code = 0
    except BaseException:  # noqa: BLE001 - reported through the log and the exit code
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _watch(pid: int, config: dict[str, Any], run: Path) -> int:
    """Wait for the child (killing it ``delay`` s after it is ready, for timer kills). The pid
    cannot be reused before it is reaped here, so the kill can only reach this child."""
    kill = config.get("kill") or {}
    deadline, give_up, hung = None, time.monotonic() + 120, False
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            if hung:
                return 124  # killed for hanging: reported as a failure, not as a kill point
            return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        if not hung and time.monotonic() > give_up:
            os.kill(pid, signal.SIGKILL)
            hung = True
        if kill.get("at") == "timer":
            if deadline is None and (run / "ready").exists():
                deadline = time.monotonic() + kill["delay"]
            if deadline is not None and time.monotonic() >= deadline:
                os.kill(pid, signal.SIGKILL)
                deadline = float("inf")
        time.sleep(0.0005)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        _serve()
    else:
        train(json.loads(sys.argv[2]))
