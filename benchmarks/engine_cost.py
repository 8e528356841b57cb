"""The engine's own cost: hookline against a hand-written loop on the very same batches.

    python benchmarks/engine_cost.py                 # batch 32 and 128, 7 rounds each
    python benchmarks/engine_cost.py --rounds 3 --batch-sizes 32
    python benchmarks/engine_cost.py --profile-only  # the cProfile call count alone
    python benchmarks/engine_cost.py --no-profile    # the timings alone

Unlike ``run.py`` (a fresh process per run, each framework batching the data its own way),
everything here runs in one process and every contender iterates one list of pre-sliced
``(x, y)`` tensors: hookline receives that list as ``train_data``, so neither side gathers a
batch and the difference is the engine alone. Four contenders, run in an order rotated every
round so that all of them see the same machine state:

- **raw bare**: ``zero_grad/forward/backward/step`` per batch, a validation pass per epoch;
- **hookline bare**: ``Trainer(..., verbose=0)`` with its default callbacks (History);
- **raw typical**: the raw loop doing by hand what hookline typical's callbacks do: every
  step's loss to a CSV (``.item()`` per step), ``torch.save`` of the best weights after each
  validation, an early-stopping comparison;
- **hookline typical**: ``EarlyStopping`` + ``ModelCheckpoint(save_best_only=True,
  save_weights_only=True)`` + ``CSVLogger``, the durable defaults (atomic, fsynced writes).

Each run times ``fit()`` alone (model, optimizer and Trainer built before). Printed: the
ratio of best runs (the fastest of each over the raw bare loop's fastest: other work on the
machine only adds time) and the median of the per-round ratios, then the Python calls per
training step that cProfile counts for hookline bare and raw bare on the same batches.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import json
import math
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import hookline
from hookline.callbacks import CSVLogger, EarlyStopping, ModelCheckpoint

SIZES = (32, 64, 10)
STEPS_PER_EPOCH = 250  # at batch 32: 8,000 training samples, the same samples at batch 128
VAL_SAMPLES = 1024
LEARNING_RATE = 0.01
NEVER_STOP = 10**6
VARIANTS = ("raw bare", "hookline bare", "raw typical", "hookline typical")

Batches = list[tuple[torch.Tensor, torch.Tensor]]


def make_batches(batch_size: int, seed: int = 0) -> tuple[Batches, Batches]:
    """(train, val) lists of pre-sliced (x, y) batches: the identical input every contender
    iterates (contiguous copies, so no contender pays for a view)."""
    generator = torch.Generator().manual_seed(seed)
    samples = STEPS_PER_EPOCH * 32 + VAL_SAMPLES
    x = torch.randn(samples, SIZES[0], generator=generator)
    y = (x @ torch.randn(SIZES[0], SIZES[-1], generator=generator)).argmax(dim=1)
    cut = STEPS_PER_EPOCH * 32

    def sliced(xs: torch.Tensor, ys: torch.Tensor) -> Batches:
        return [(xs[i:i + batch_size].clone(), ys[i:i + batch_size].clone())
                for i in range(0, len(xs), batch_size)]
    return sliced(x[:cut], y[:cut]), sliced(x[cut:], y[cut:])


def make_model(seed: int = 0) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(SIZES[0], SIZES[1]), torch.nn.ReLU(),
                               torch.nn.Linear(SIZES[1], SIZES[2]))


def raw_fit(train: Batches, val: Batches, epochs: int, workdir: Path | None) -> Callable[[], int]:
    """The hand-written loop; with ``workdir`` it does the typical work by hand."""
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    loss_fn = torch.nn.CrossEntropyLoss()
    val_count = sum(len(x) for x, _ in val)

    def fit() -> int:
        log = open(workdir / "steps.csv", "w", newline="") if workdir else None  # noqa: SIM115
        writer = csv.writer(log) if log else None
        best, wait, steps = math.inf, 0, 0
        try:
            for _ in range(epochs):
                model.train()
                for x, y in train:
                    optimizer.zero_grad(set_to_none=True)
                    loss = loss_fn(model(x), y)
                    loss.backward()
                    optimizer.step()
                    steps += 1
                    if writer is not None:
                        writer.writerow((steps, loss.item()))
                model.eval()
                total = torch.zeros(())
                with torch.no_grad():
                    for x, y in val:
                        total += loss_fn(model(x), y) * len(x)
                model.train()
                val_loss = total.item() / val_count
                if workdir is not None:
                    if val_loss < best:
                        best, wait = val_loss, 0
                        torch.save(model.state_dict(), workdir / "best.pt")
                    else:
                        wait += 1
                    if wait > NEVER_STOP:
                        break
        finally:
            if log:
                log.close()
        return steps
    return fit


def hookline_fit(train: Batches, val: Batches, epochs: int,
                 workdir: Path | None) -> Callable[[], int]:
    """hookline's Trainer on the same list; with ``workdir`` the typical callbacks."""
    model = make_model()
    callbacks: list[hookline.Callback] = []
    if workdir is not None:
        callbacks = [EarlyStopping(monitor="val_loss", patience=NEVER_STOP),
                     ModelCheckpoint(dirpath=workdir / "checkpoints", save_best_only=True,
                                     save_weights_only=True),
                     CSVLogger(workdir / "log.csv")]
    trainer = hookline.Trainer(
        model, optimizer=torch.optim.SGD(model.parameters(), lr=LEARNING_RATE),
        loss=torch.nn.CrossEntropyLoss(), metrics=None, train_data=train, val_data=val,
        epochs=epochs, callbacks=callbacks, verbose=0, device="cpu")

    def fit() -> int:
        trainer.fit()
        return trainer.step
    return fit


BUILDERS = {"raw bare": (raw_fit, False), "hookline bare": (hookline_fit, False),
            "raw typical": (raw_fit, True), "hookline typical": (hookline_fit, True)}


def build(variant: str, train: Batches, val: Batches, epochs: int,
          root: Path) -> Callable[[], int]:
    builder, typical = BUILDERS[variant]
    workdir = None
    if typical:
        workdir = Path(tempfile.mkdtemp(dir=root))
    return builder(train, val, epochs, workdir)


def time_rounds(batch_size: int, rounds: int, epochs: int,
                root: Path) -> dict[str, list[tuple[float, float]]]:
    """(wall s, process CPU s) of each variant's fit, ``rounds`` times, the order rotated
    every round. CPU time counts every thread of the process (a checkpoint writer's too) and
    not the time spent waiting for a core other programs hold."""
    train, val = make_batches(batch_size)
    expected = len(train) * epochs
    raw_fit(train, val, 1, None)()  # torch's kernels and allocator warmed up once
    hookline_fit(train, val, 1, None)()
    timings: dict[str, list[tuple[float, float]]] = {variant: [] for variant in VARIANTS}
    for index in range(rounds):
        order = VARIANTS[index % 4:] + VARIANTS[:index % 4]
        for variant in order:
            fit = build(variant, train, val, epochs, root)
            wall, cpu = time.perf_counter(), time.process_time()
            steps = fit()
            timings[variant].append((time.perf_counter() - wall, time.process_time() - cpu))
            if steps != expected:
                raise RuntimeError(f"{variant} took {steps} steps, expected {expected}")
    return timings


def calls_per_step(variant: str, batch_size: int, epochs: int, root: Path) -> float:
    """Every call cProfile sees during fit() (Python functions and builtins), per training
    step, after a one-epoch fit of the same variant has done the one-time work (imports)."""
    train, val = make_batches(batch_size)
    build(variant, train, val, 1, root)()
    fit = build(variant, train, val, epochs, root)
    profiler = cProfile.Profile()
    profiler.enable()
    steps = fit()
    profiler.disable()
    return pstats.Stats(profiler).total_calls / steps  # type: ignore[attr-defined]


def ratios(runs: list[float], reference: list[float]) -> str:
    """``best / best`` and the median of the per-round ratios, as "1.012 / 1.034"."""
    paired = statistics.median(run / ref for run, ref in zip(runs, reference))
    return f"{min(runs) / min(reference):.3f} / {paired:.3f}"


def report(batch_size: int, timings: dict[str, list[tuple[float, float]]]) -> str:
    wall = {variant: [run[0] for run in runs] for variant, runs in timings.items()}
    cpu = {variant: [run[1] for run in runs] for variant, runs in timings.items()}
    lines = [(f"batch {batch_size}, {len(wall['raw bare'])} rounds (ratios: best runs / median "
             f"of the rounds' ratios)"),
             ("| variant | best s | median s | x raw bare | x raw bare (CPU) | x raw typical "
             "| x raw typical (CPU) |"),
             "|---|---|---|---|---|---|---|"]
    for variant in VARIANTS:
        lines.append(f"| {variant} | {min(wall[variant]):.4f} | "
                     f"{statistics.median(wall[variant]):.4f} | "
                     f"{ratios(wall[variant], wall['raw bare'])} | "
                     f"{ratios(cpu[variant], cpu['raw bare'])} | "
                     f"{ratios(wall[variant], wall['raw typical'])} | "
                     f"{ratios(cpu[variant], cpu['raw typical'])} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-sizes", default="32,128")
    parser.add_argument("--profile-only", action="store_true", help="the call count alone")
    parser.add_argument("--no-profile", action="store_true", help="the timings alone")
    parser.add_argument("--json", type=Path, help="also write every run's timings here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="engine-cost-") as folder:
        root = Path(folder)
        if not args.profile_only:
            measured = {}
            for batch_size in (int(b) for b in args.batch_sizes.split(",")):
                measured[batch_size] = time_rounds(batch_size, args.rounds, args.epochs, root)
                print(report(batch_size, measured[batch_size]))
                print()
            if args.json:
                args.json.write_text(json.dumps(measured, indent=1))
        if args.no_profile:
            return
        raw = calls_per_step("raw bare", 32, args.epochs, root)
        ours = calls_per_step("hookline bare", 32, args.epochs, root)
        print(f"cProfile calls per training step (batch 32, {args.epochs} epochs of "
              f"{STEPS_PER_EPOCH} steps, validation included): raw bare {raw:.1f}, "
              f"hookline bare {ours:.1f} (+{ours - raw:.1f})")


if __name__ == "__main__":
    main()
