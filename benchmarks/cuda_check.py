"""On a CUDA GPU: no host-device sync inside a training step, and steps/s in fp32 and bf16.

    python benchmarks/cuda_check.py                          # on a machine with a GPU
    python benchmarks/cuda_check.py --device cpu --steps 8   # the dry run CI does

Each training epoch's steps run under ``torch.cuda.set_sync_debug_mode("error")``: any call
that makes the host wait for the device (``.item()``, a blocking copy, ``nonzero``...) raises
there. The window opens when an epoch starts and closes after its last step's
``on_train_batch_end``, so the once-per-epoch reads (the epoch's mean loss, validation, the
checkpoint's copy) stay outside it. hookline runs bare (default callbacks) and typical (early
stopping, a best-model checkpoint each epoch, every step's loss to CSV) against a raw loop
doing the same steps; the table printed is what BENCHMARKS.md records. fp16 is left out:
torch's GradScaler reads ``found_inf`` on the host every step, in any engine.

On CPU there is no device to sync with: the dry run only checks the script itself runs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from frameworks.hookline_step_csv import StepCSVLogger
from workloads import LEARNING_RATE, MEDIUM, NEVER_STOP_PATIENCE, make_data, make_torch_model

import hookline
from hookline.callbacks import EarlyStopping, ModelCheckpoint

PRECISIONS = ("32", "bf16")


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


def raw_fit(device: torch.device, precision: str, data: tuple, steps_per_epoch: int,
            epochs: int) -> Callable[[], int]:
    """The hand-written loop: batches moved with non_blocking copies, no value read per step."""
    model = make_torch_model(MEDIUM).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y = data[0], data[1]
    batch = MEDIUM.batch_size
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def fit() -> int:
        generator = torch.Generator().manual_seed(0)
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=generator)
            for start in range(0, len(x), batch):
                index = order[start:start + batch]
                xb = x[index].to(device, non_blocking=True)
                yb = y[index].to(device, non_blocking=True)
                optimizer.zero_grad(set_to_none=True)
                with autocast:
                    loss = loss_fn(model(xb), yb)
                loss.backward()
                optimizer.step()
        return steps_per_epoch * epochs
    return fit


def hookline_fit(device: torch.device, precision: str, data: tuple, steps_per_epoch: int,
                 epochs: int, typical: bool,
                 workdir: Path) -> tuple[Callable[[], int], SyncGuard, hookline.Trainer]:
    model = make_torch_model(MEDIUM)
    guard = SyncGuard(steps_per_epoch, device)
    callbacks: list = [guard]
    if typical:
        callbacks += [EarlyStopping(monitor="val_loss", patience=NEVER_STOP_PATIENCE),
                      ModelCheckpoint(dirpath=workdir, monitor="val_loss", save_top_k=1,
                                      save_weights_only=True),
                      StepCSVLogger(workdir / "steps.csv")]
    x, y, x_val, y_val = data
    trainer = hookline.Trainer(
        model, optimizer=torch.optim.SGD(model.parameters(), lr=LEARNING_RATE),
        loss=torch.nn.CrossEntropyLoss(), metrics=None,
        train_data=(x, y), val_data=(x_val, y_val), epochs=epochs, batch_size=MEDIUM.batch_size, shuffle=True,
        seed=0, callbacks=callbacks, verbose=0, device=device, precision=precision)

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=500, help="training steps per epoch")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here: run this on a machine with a GPU, or pass --device cpu "
              "for the dry run", file=sys.stderr)
        return 2
    x, y, x_val, y_val = make_data(MEDIUM)
    copies = args.steps // MEDIUM.steps_per_epoch + 1  # the workload's rows, repeated
    rows_needed = args.steps * MEDIUM.batch_size  # exactly --steps batches per epoch
    data = (torch.cat([x] * copies)[:rows_needed], torch.cat([y] * copies)[:rows_needed],
            x_val, y_val)
    rows = []
    for precision in PRECISIONS:
        best: dict[str, float] = {}
        for _ in range(args.repeats):  # alternating, the best of the repeats is kept
            for name in ("raw", "hookline bare", "hookline typical"):
                with tempfile.TemporaryDirectory(prefix="hookline-cuda-") as workdir:
                    if name == "raw":
                        fit, guard = raw_fit(device, precision, data, args.steps,
                                             args.epochs), None
                    else:
                        fit, guard, _ = hookline_fit(device, precision, data, args.steps,
                                                     args.epochs, name.endswith("typical"),
                                                     Path(workdir))
                    steps, seconds = timed(fit, device)
                if steps != args.steps * args.epochs:
                    raise SystemExit(f"{name}: took {steps} steps, expected "
                                     f"{args.steps * args.epochs}")
                if guard is not None and guard.windows != args.epochs:
                    raise SystemExit(f"{name}: the sync check covered {guard.windows} epochs "
                                     f"of {args.epochs}")
                best[name] = max(best.get(name, 0.0), steps / seconds)
        for name, steps_per_s in best.items():
            rows.append((precision, name, steps_per_s, best["raw"] / steps_per_s))
    checked = "yes" if device.type == "cuda" else "no (CPU dry run)"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name}; torch {torch.__version__}; medium MLP, batch "
          f"{MEDIUM.batch_size}, {args.steps} steps x {args.epochs} epochs, best of "
          f"{args.repeats}; steps under set_sync_debug_mode('error'): {checked}\n")
    print("| precision | run | steps/s | × raw |\n|---|---|---|---|")
    for precision, run, steps_per_s, ratio in rows:
        print(f"| {precision} | {run} | {steps_per_s:,.0f} | {ratio:.3f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
