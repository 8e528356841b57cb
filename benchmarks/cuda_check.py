"""On a CUDA GPU: no host-device sync inside a training step, and steps/s in fp32 and bf16.

    python benchmarks/cuda_check.py                   # the one command, on a machine with a GPU
    python benchmarks/cuda_check.py --device cpu --steps 4 --epochs 2 --repeats 1  # dry run

Three workloads, each in fp32 and under bf16 autocast, hookline bare (default callbacks) and
typical (early stopping, a best-model checkpoint each epoch, every step's loss to CSV)
against a raw loop doing the same steps:

- ``mlp``: the medium MLP on in-memory arrays (hookline batches them itself; the raw loop
  gathers each batch and copies it with ``non_blocking=True``);
- ``cnn``: the suite's CNN with its weights in channels-last (convolutions then run
  channels-last), images augmented per sample in 2 DataLoader workers, batches in pinned
  memory (``pin_memory=True``), copied with ``non_blocking=True``;
- ``transformer``: the suite's tiny causal LM on dict batches from a pinned DataLoader, the
  model computing its own loss.

Each training epoch's steps run under ``torch.cuda.set_sync_debug_mode("error")``: any call
that makes the host wait for the device (``.item()``, a blocking copy, ``nonzero``...) raises
there. The window opens when an epoch starts and closes after its last step's
``on_train_batch_end``, so the once-per-epoch reads (the epoch's mean loss, validation, the
checkpoint's copy) stay outside it; the raw loop's epochs run under the same window. fp16 is
left out: torch's GradScaler reads ``found_inf`` on the host every step, in any engine.

Without a GPU the default run prints why and exits with status 0 having checked nothing
(``--require-cuda`` makes that status 2); ``--device cpu`` is the dry run CI does, which
checks the script itself (no device to sync with).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import text
import torch
import vision
from frameworks.hookline_step_csv import StepCSVLogger
from tasks import loss_of
from workloads import LEARNING_RATE, MEDIUM, NEVER_STOP_PATIENCE, make_data, make_torch_model

import hookline
from hookline.callbacks import EarlyStopping, ModelCheckpoint

PRECISIONS = ("32", "bf16")
JOBS = ("mlp", "cnn", "transformer")
DEFAULT_STEPS = {"mlp": 500, "cnn": 100, "transformer": 200}
BATCH = {"mlp": MEDIUM.batch_size, "cnn": 64, "transformer": 32}
KINDS = {"mlp": "mlp", "cnn": "cnn", "transformer": "lm"}
RUNS = ("raw", "hookline bare", "hookline typical")


class SyncGuard(hookline.Callback):
    """Turns host-device syncs into errors while an epoch's training steps run."""

    order = 10**6  # last at every event: the window closes after every other listener ran

    def __init__(self, steps_per_epoch: int, device: torch.device) -> None:
        self.last_batch = steps_per_epoch - 1
        self.cuda = device.type == "cuda"
        self.windows = 0

    def _mode(self, mode: str) -> None:
        if self.cuda:
            torch.cuda.set_sync_debug_mode(mode)

    def on_train_epoch_start(self, trainer) -> None:
        self._mode("error")
        self.windows += 1

    def on_train_batch_end(self, trainer) -> None:
        if trainer.batch_i == self.last_batch:
            self._mode("default")

    def teardown(self, engine) -> None:
        self._mode("default")


def make_model(job: str) -> torch.nn.Module:
    if job == "mlp":
        return make_torch_model(MEDIUM)
    if job == "cnn":
        return vision.make_cnn().to(memory_format=torch.channels_last)
    return text.make_lm()


def make_job_data(job: str, steps: int, device: torch.device) -> tuple[Any, Any]:
    """(train, val): arrays ``(x, y)`` for the MLP, DataLoaders for the others, exactly
    ``steps`` training batches per epoch."""
    batch = BATCH[job]
    if job == "mlp":
        x, y, x_val, y_val = make_data(MEDIUM)
        copies = steps // MEDIUM.steps_per_epoch + 1  # the workload's rows, repeated
        rows = steps * batch
        return (torch.cat([x] * copies)[:rows], torch.cat([y] * copies)[:rows]), (x_val, y_val)
    if job == "cnn":
        return vision.loaders(steps * batch, 4 * batch, batch, seed=0, workers=2)
    return text.loaders(steps * batch, 4 * batch, batch, seed=0,
                        pin_memory=device.type == "cuda")


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, dict):
        return {key: value.to(device, non_blocking=True) for key, value in batch.items()}
    return [value.to(device, non_blocking=True) for value in batch]


def _array_batches(train: tuple, batch: int, generator: torch.Generator):
    x, y = train
    order = torch.randperm(len(x), generator=generator)
    for start in range(0, len(x), batch):
        index = order[start:start + batch]
        yield x[index], y[index]


def raw_fit(job: str, device: torch.device, precision: str, train: Any, steps_per_epoch: int,
            epochs: int, window: bool | None = None) -> Callable[[], int]:
    """The hand-written loop: non_blocking copies, no value read per step; each epoch's steps
    under the same sync window as hookline's (``window``: on a GPU, unless told)."""
    model = make_model(job).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    kind = KINDS[job]
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    cuda = device.type == "cuda" if window is None else window

    def fit() -> int:
        generator = torch.Generator().manual_seed(0)
        steps = 0
        for _ in range(epochs):
            batches = _array_batches(train, BATCH[job], generator) if job == "mlp" else train
            if cuda:
                torch.cuda.set_sync_debug_mode("error")
            try:
                for batch in batches:
                    batch = to_device(batch, device)
                    optimizer.zero_grad(set_to_none=True)
                    with autocast:
                        loss = loss_of(kind, model, batch)
                    loss.backward()
                    optimizer.step()
                    steps += 1
            finally:
                if cuda:
                    torch.cuda.set_sync_debug_mode("default")
        return steps
    return fit


def hookline_fit(job: str, device: torch.device, precision: str, train: Any, val: Any,
                 steps_per_epoch: int, epochs: int, typical: bool,
                 workdir: Path) -> tuple[Callable[[], int], SyncGuard, hookline.Trainer]:
    model = make_model(job)
    guard = SyncGuard(steps_per_epoch, device)
    callbacks: list = [guard]
    if typical:
        callbacks += [EarlyStopping(monitor="val_loss", patience=NEVER_STOP_PATIENCE),
                      ModelCheckpoint(dirpath=workdir, monitor="val_loss", save_top_k=1,
                                      save_weights_only=True),
                      StepCSVLogger(workdir / "steps.csv")]
    options: dict = {"loss": None if job == "transformer" else torch.nn.CrossEntropyLoss()}
    if job == "mlp":
        options.update(batch_size=BATCH[job], shuffle=True)
    trainer = hookline.Trainer(
        model, optimizer=torch.optim.SGD(model.parameters(), lr=LEARNING_RATE), metrics=None,
        train_data=train, val_data=val, epochs=epochs, seed=0, callbacks=callbacks, verbose=0,
        device=device, precision=precision, **options)

    def fit() -> int:
        trainer.fit()
        return trainer.step
    return fit, guard, trainer


def timed(fit: Callable[[], int], device: torch.device) -> tuple[int, float]:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    steps = fit()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps, time.perf_counter() - start


def check_job(job: str, device: torch.device, steps_per_epoch: int, epochs: int,
              repeats: int) -> list[tuple[str, str, str, float, float]]:
    """(job, precision, run, steps/s, raw's steps/s over this run's) rows, best of repeats."""
    train, val = make_job_data(job, steps_per_epoch, device)
    rows = []
    for precision in PRECISIONS:
        best: dict[str, float] = {}
        for _ in range(repeats):  # alternating, the best of the repeats is kept
            for name in RUNS:
                with tempfile.TemporaryDirectory(prefix="hookline-cuda-") as workdir:
                    guard = None
                    if name == "raw":
                        fit = raw_fit(job, device, precision, train, steps_per_epoch, epochs)
                    else:
                        fit, guard, _ = hookline_fit(job, device, precision, train, val,
                                                     steps_per_epoch, epochs,
                                                     name.endswith("typical"), Path(workdir))
                    steps, seconds = timed(fit, device)
                if steps != steps_per_epoch * epochs:
                    raise SystemExit(f"{job} {name}: took {steps} steps, expected "
                                     f"{steps_per_epoch * epochs}")
                if guard is not None and guard.windows != epochs:
                    raise SystemExit(f"{job} {name}: the sync check covered {guard.windows} "
                                     f"epochs of {epochs}")
                best[name] = max(best.get(name, 0.0), steps / seconds)
        rows += [(job, precision, name, rate, best["raw"] / rate) for name, rate in best.items()]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--jobs", default=",".join(JOBS), help=f"subset of {','.join(JOBS)}")
    parser.add_argument("--steps", type=int, help="training steps per epoch (default " +
                        ", ".join(f"{k} {v}" for k, v in DEFAULT_STEPS.items()) + ")")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--require-cuda", action="store_true",
                        help="exit with status 2, not 0, when there is no CUDA device")
    args = parser.parse_args(argv)
    jobs = args.jobs.split(",")
    if unknown := [job for job in jobs if job not in JOBS]:
        parser.error(f"--jobs: unknown {unknown}; choose from {','.join(JOBS)}")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("cuda_check: no CUDA device here, so nothing was checked. Run "
              "`python benchmarks/cuda_check.py` on a machine with a GPU; "
              "`--device cpu --steps 4 --epochs 2 --repeats 1` is the CPU dry run.")
        return 2 if args.require_cuda else 0
    torch.backends.cudnn.benchmark = device.type == "cuda"
    rows = []
    for job in jobs:
        rows += check_job(job, device, args.steps or DEFAULT_STEPS[job], args.epochs,
                          args.repeats)
    checked = "yes" if device.type == "cuda" else "no (CPU dry run)"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    steps = ", ".join(f"{job} {args.steps or DEFAULT_STEPS[job]}" for job in jobs)
    print(f"device: {name}; torch {torch.__version__}; steps per epoch: {steps}; "
          f"{args.epochs} epochs; best of {args.repeats}; steps under "
          f"set_sync_debug_mode('error'): {checked}\n")
    print("| workload | precision | run | steps/s | × raw |\n|---|---|---|---|---|")
    for job, precision, run, steps_per_s, ratio in rows:
        print(f"| {job} | {precision} | {run} | {steps_per_s:,.0f} | {ratio:.3f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
