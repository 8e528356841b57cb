"""How the callback system and the run scale: listeners, registered callbacks, run length, RSS.

    python benchmarks/scale_bench.py            # the figures BENCHMARKS.md records (~30 s)
    python benchmarks/scale_bench.py --quick    # a few steps of each (the smoke run)
    python benchmarks/scale_bench.py --json out.json

All in one process, hookline only, the tiny MLP (32-64-10, batch 32) given a list of
pre-cut batches (the same 250 batch objects, repeated to the run's length, so a longer run
touches no more data), ``verbose=0`` with the default callbacks, ``torch.set_num_threads(1)``;
only ``fit()`` is timed, configurations alternate within each round.

- Listeners: a fit with N callbacks (0, 1, 10, 100) each listening to every per-batch
  training event (8 per step). The cost added per step is the fastest round's time per step
  over N=0's fastest ("best runs", the figure other work on the machine disturbs least),
  with the median over rounds of the paired differences beside it; per call, the best-runs
  figure divided by N x 8.
- Non-listening callbacks: 1,000 registered ``Callback`` objects that override nothing: the
  cost per step of a fit against none, and per event of ``fire()`` and of the engine's
  ``if handlers:`` guard.
- Run length: the time per step of 1 epoch of 100, 1,000 and 10,000 steps, the same with a
  callback reading the epoch's running loss after every batch (as the Keras door's batch
  logs do), and of 1,000 steps cut into 1, 10 and 100 epochs (no validation): flat means no
  per-step growth, the epoch series shows the cost of an epoch boundary.
- Memory: a 100-epoch run (50 steps and a validation each) with the default callbacks, and
  one with early stopping, a best-model checkpoint and a per-step CSV; the process's resident
  set size is read after every epoch (``/proc/self/statm``). A third run of 100 epochs under
  ``tracemalloc`` reads the bytes Python has allocated and not freed after every epoch,
  which shows growth too small for RSS's pages.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import timeit
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch
from frameworks.hookline_step_csv import StepCSVLogger
from workloads import LEARNING_RATE, NEVER_STOP_PATIENCE, TINY, make_data, make_torch_model

import hookline
from hookline.callback_list import CallbackList
from hookline.callbacks import EarlyStopping, ModelCheckpoint
from hookline.events import EVENTS

BATCH_EVENTS = tuple(e.name for e in EVENTS if e.per_batch and e.run == "train")
LISTENERS = (0, 1, 10, 100)
IDLE_CALLBACKS = 1000


def _listener_class() -> type:
    """A callback with a no-op method for every per-batch training event."""
    def noop(self, trainer) -> None:
        pass
    return type("EveryBatchEvent", (hookline.Callback,), dict.fromkeys(BATCH_EVENTS, noop))


def rss_mb() -> float:
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PerEpoch(hookline.Callback):
    """Reads ``probe()`` after every epoch, after every other callback of the epoch."""

    order = 10**6

    def __init__(self, probe) -> None:
        self.probe = probe
        self.samples: list[float] = []

    def on_fit_epoch_end(self, trainer) -> None:
        self.samples.append(self.probe())


def traced_mb() -> float:
    return tracemalloc.get_traced_memory()[0] / 2**20


_X, _Y, _X_VAL, _Y_VAL = make_data(TINY)
BATCHES = list(zip(_X.split(TINY.batch_size), _Y.split(TINY.batch_size)))
VAL_BATCHES = list(zip(_X_VAL[:128].split(TINY.batch_size), _Y_VAL[:128].split(TINY.batch_size)))


def _trainer(steps_per_epoch: int, epochs: int, callbacks: list, *, validate: bool = False,
             seed: int = 0) -> hookline.Trainer:
    train = [BATCHES[i % len(BATCHES)] for i in range(steps_per_epoch)]
    model = make_torch_model(TINY, seed)
    return hookline.Trainer(
        model, optimizer=torch.optim.SGD(model.parameters(), lr=LEARNING_RATE),
        loss=torch.nn.CrossEntropyLoss(), metrics=None, train_data=train,
        val_data=VAL_BATCHES if validate else None, epochs=epochs, seed=seed,
        callbacks=callbacks, verbose=0, device="cpu")


def _fit_seconds(trainer: hookline.Trainer) -> float:
    start = time.perf_counter()
    trainer.fit()
    return time.perf_counter() - start


def _paired(configs: dict[str, tuple[int, int, object]], rounds: int) -> dict[str, list[float]]:
    """Seconds per step of each config, alternating configs within each round.
    ``configs`` maps a name to (steps_per_epoch, epochs, make_callbacks)."""
    seconds: dict[str, list[float]] = {name: [] for name in configs}
    names = list(configs)
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            steps_per_epoch, epochs, make_callbacks = configs[name]
            trainer = _trainer(steps_per_epoch, epochs, make_callbacks())
            seconds[name].append(_fit_seconds(trainer) / (steps_per_epoch * epochs))
    return seconds


def listeners(steps: int, rounds: int) -> dict[str, float]:
    cls = _listener_class()
    configs = {str(n): (steps, 1, lambda n=n: [cls() for _ in range(n)]) for n in LISTENERS}
    configs["idle"] = (steps, 1, lambda: [hookline.Callback() for _ in range(IDLE_CALLBACKS)])
    per_step = _paired(configs, rounds)
    base = per_step["0"]
    figures: dict[str, float] = {"steps per fit": steps, "rounds": rounds,
                                 "events per step": len(BATCH_EVENTS),
                                 "step µs, no extra callback (best run)": min(base) * 1e6}
    for name in [*map(str, LISTENERS[1:]), "idle"]:
        best = (min(per_step[name]) - min(base)) * 1e6
        paired = statistics.median(a - b for a, b in zip(per_step[name], base)) * 1e6
        label = f"{IDLE_CALLBACKS} non-listening callbacks" if name == "idle" else \
            f"{name} listeners"
        figures[f"{label}: µs added per step (best runs)"] = best
        figures[f"{label}: µs added per step (median of rounds)"] = paired
        if name != "idle":
            figures[f"{label}: µs per listener call (best runs)"] = \
                best / (int(name) * len(BATCH_EVENTS))
    return figures


def idle_dispatch(number: int, repeats: int) -> dict[str, float]:
    callbacks = CallbackList([hookline.Callback() for _ in range(IDLE_CALLBACKS)])
    engine = object()
    event = "on_train_batch_end"

    def per_call(stmt: str, names: dict) -> float:
        timer = timeit.Timer(stmt, globals=names)
        return statistics.median(timer.repeat(repeat=repeats, number=number)) / number * 1e6
    return {
        f"fire() of an event, {IDLE_CALLBACKS} callbacks, none listening: µs":
            per_call("fire(event, engine)", {"fire": callbacks.fire, "event": event,
                                             "engine": engine}),
        f"engine guard (if handlers:), {IDLE_CALLBACKS} callbacks, none listening: µs":
            per_call("if handlers: fire(event, engine)",
                     {"handlers": callbacks.handlers[event], "fire": callbacks.fire,
                      "event": event, "engine": engine}),
    }


class RunningLossReader(hookline.Callback):
    """Reads the epoch's running loss after every batch, as the Keras door's batch logs,
    ``tloss`` or a progress bar do."""

    def on_train_batch_end(self, trainer) -> None:
        float(trainer.train_loss)


def run_length(steps: tuple[int, ...], epochs: tuple[int, ...], total: int,
               rounds: int) -> dict[str, dict[str, float]]:
    by_steps = _paired({str(n): (n, 1, list) for n in steps}, rounds)
    reading = _paired({str(n): (n, 1, lambda: [RunningLossReader()]) for n in steps}, rounds)
    by_epochs = _paired({str(e): (total // e, e, list) for e in epochs}, rounds)
    return {  # the fastest round of each
        "µs per step, 1 epoch of N steps": {n: min(v) * 1e6 for n, v in by_steps.items()},
        "µs per step, 1 epoch of N steps, the running loss read every step": {
            n: min(v) * 1e6 for n, v in reading.items()},
        f"µs per step, {total} steps in E epochs": {
            e: min(v) * 1e6 for e, v in by_epochs.items()},
    }


MEMORY_RUNS = ("default callbacks: RSS", "typical callbacks: RSS",
               "default callbacks: Python heap (tracemalloc)")


def rss_flatness(epochs: int, steps_per_epoch: int) -> dict[str, dict[str, float]]:
    figures = {}
    for name in MEMORY_RUNS:
        traced = "tracemalloc" in name
        probe = PerEpoch(traced_mb if traced else rss_mb)
        with tempfile.TemporaryDirectory(prefix="hookline-rss-") as workdir:
            callbacks: list = [probe]
            if name.startswith("typical"):
                callbacks += [EarlyStopping(monitor="val_loss", patience=NEVER_STOP_PATIENCE),
                              ModelCheckpoint(dirpath=workdir, monitor="val_loss",
                                              save_top_k=1, save_weights_only=True),
                              StepCSVLogger(Path(workdir) / "steps.csv")]
            trainer = _trainer(steps_per_epoch, epochs, callbacks, validate=True)
            if traced:
                tracemalloc.start()
            try:
                trainer.fit()
            finally:
                tracemalloc.stop()
        samples = probe.samples
        if len(samples) != epochs:
            raise SystemExit(f"RSS was read after {len(samples)} epochs of {epochs}")
        half = samples[len(samples) // 2]
        figures[name] = {"epochs": epochs, "steps": epochs * steps_per_epoch,
                         "first epoch MB": samples[0], "middle epoch MB": half,
                         "last epoch MB": samples[-1], "max MB": max(samples),
                         "last - first MB": samples[-1] - samples[0],
                         "last - middle MB": samples[-1] - half}
    return figures


def measure(quick: bool = False) -> dict:
    torch.set_num_threads(1)
    _trainer(50, 1, []).fit()  # warm torch's kernels and hookline's imports up
    if quick:  # memory first: its absolute figures are then those of a fresh process
        return {"rss": rss_flatness(epochs=5, steps_per_epoch=5),
                "listeners": listeners(steps=30, rounds=1),
                "idle_dispatch": idle_dispatch(number=2_000, repeats=3),
                "run_length": run_length((10, 100), (1, 10), total=100, rounds=1)}
    return {"rss": rss_flatness(epochs=100, steps_per_epoch=50),
            "listeners": listeners(steps=1000, rounds=5),
            "idle_dispatch": idle_dispatch(number=50_000, repeats=7),
            "run_length": run_length((100, 1000, 10000), (1, 10, 100), total=1000, rounds=3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps of each")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    figures = measure(args.quick)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    import report
    print(report.scale_section(figures))


if __name__ == "__main__":
    main()
