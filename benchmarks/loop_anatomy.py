"""Where hookline bare's time over the raw loop goes, on a model that is all framework cost.

    python benchmarks/loop_anatomy.py                # 300 steps a fit, 200 rounds (~3 min)
    python benchmarks/loop_anatomy.py --rounds 50 --steps 1000
    python benchmarks/loop_anatomy.py --quick        # a few steps, 2 rounds (the smoke test)

The model is ``Linear(4, 1)`` on batches of 8 (a list of pre-cut batches, MSE, SGD, one
epoch, no validation, one torch thread): its step is some 400 µs of torch's own dispatch on
this VM and almost no arithmetic, so what an engine adds shows at its largest. Every
contender runs the same batches in one process, in a shuffled order per round (as
``engine_cost.py``), and each fit is timed alone (models and trainers built before):

- **raw** and **raw, again** (the A/A control): ``zero_grad / forward / loss / backward /
  step`` per batch;
- **hookline bare**: ``Trainer(..., verbose=0).fit()``;
- **raw loop as the trainer's epoch**: a ``Trainer`` whose epoch is the raw loop's own code:
  what fit costs around an epoch (set-up, the first batch's signature record, the epoch's
  end, teardown);
- **hookline's step in a bare loop**: the trainer's default ``training_step`` called from a
  loop that does nothing else (backward, step, zero_grad);
- **minimal engine loop**: the smallest loop that still keeps what callbacks read at an
  epoch's end and what a SIGTERM needs (``batch_i``, ``batch``, ``loss``, each step's loss as
  a float, the optimizer step marked critical): the specialised fast path a second loop
  without the per-batch checks would be.

The three last contenders replace ``Trainer._train_epoch``, an internal method: this is an
anatomy of the loop, not a way to use it. Reported: each contender's median fit time per step
and the median of its paired ratios to raw's fit of the same round, with a bootstrap 95%
interval (``engine_cost.paired``).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent / "src"))

import torch
from engine_cost import paired

from hookline.engine.base import SIGNALS
from hookline.engine.trainer import Trainer
from hookline.run_state import Phase

BATCH, FEATURES = 8, 4
LEARNING_RATE = 0.01
Batches = list[tuple[torch.Tensor, torch.Tensor]]


class Fit:
    """One contender's fit, built before it is timed: ``fit()`` returns the steps taken;
    ``model`` is the module it trains, ``trainer`` the Trainer (None for the raw loop)."""

    def __init__(self, run: Callable[[], int], model: torch.nn.Module,
                 trainer: Trainer | None = None) -> None:
        self.run, self.model, self.trainer = run, model, trainer

    def __call__(self) -> int:
        return self.run()


def make_batches(steps: int, seed: int = 0) -> Batches:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(steps * BATCH, FEATURES, generator=generator)
    y = torch.randn(steps * BATCH, 1, generator=generator)
    return [(x[i:i + BATCH], y[i:i + BATCH]) for i in range(0, steps * BATCH, BATCH)]


def _model_and_optimizer() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    model = torch.nn.Linear(FEATURES, 1)
    return model, torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)


def raw_fit(batches: Batches) -> Fit:
    model, optimizer = _model_and_optimizer()
    loss_fn = torch.nn.MSELoss()

    def fit() -> int:
        model.train()
        steps = 0
        for x, y in batches:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            steps += 1
        return steps
    return Fit(fit, model)


def _raw_epoch(self: Trainer, epoch: int) -> None:
    """The raw loop's code as the trainer's epoch (the phase set, as the trainer's own epoch
    sets it: the first call's signature hook removes itself only in the training phase)."""
    model, optimizer, loss_fn = self.model, self.optimizer, self.loss_fn
    self.phase, self.epoch_losses = Phase.TRAIN, []
    model.train()
    for x, y in self.train_data.epoch(epoch):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        self.step += 1


def _step_epoch(self: Trainer, epoch: int) -> None:
    """The trainer's default step, in a loop that does nothing else."""
    optimizer, step = self.optimizer, self._training_step
    self.phase, self.epoch_losses = Phase.TRAIN, []
    self.forward_model.train()
    for batch in self.train_data.epoch(epoch):
        loss = step(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        self.step += 1


def _minimal_epoch(self: Trainer, epoch: int) -> None:
    """The fewest per-batch lines that keep what callbacks read and SIGTERM's handling."""
    optimizer, step, signals = self.optimizer, self._training_step, SIGNALS
    losses: list[float] = []
    self.phase, self.epoch_losses, self.step_logs = Phase.TRAIN, losses, {}
    self.forward_model.train()
    self.callbacks.fire("on_train_epoch_start", self)
    for batch_i, batch in enumerate(self.train_data.epoch(epoch)):
        self.batch_i, self.batch = batch_i, batch
        loss = step(batch)
        if type(loss) is not torch.Tensor or loss.ndim:
            raise TypeError("the minimal loop takes a scalar loss tensor")
        self.loss = loss
        loss.backward()
        signals.critical = True
        optimizer.step()
        self.step += 1
        optimizer.zero_grad(set_to_none=True)
        signals.critical = False
        losses.append(loss.item())
        if signals.pending:
            signals.raise_pending()


TRAINER_EPOCHS: dict[str, Callable[[Trainer, int], None] | None] = {
    "hookline bare": None,
    "raw loop as the trainer's epoch": _raw_epoch,
    "hookline's step in a bare loop": _step_epoch,
    "minimal engine loop": _minimal_epoch,
}
CONTENDERS = ("raw", "raw, again", *TRAINER_EPOCHS)


def trainer_fit(batches: Batches, epoch: Callable[[Trainer, int], None] | None) -> Fit:
    model, optimizer = _model_and_optimizer()
    kind = Trainer if epoch is None else type("AnatomyTrainer", (Trainer,),
                                              {"_train_epoch": epoch})
    trainer = kind(model, optimizer=optimizer, loss=torch.nn.MSELoss(), train_data=batches,
                   epochs=1, verbose=0)

    def fit() -> int:
        trainer.fit()
        return trainer.step
    return Fit(fit, model, trainer)


def build(contender: str, batches: Batches) -> Fit:
    if contender in ("raw", "raw, again"):
        return raw_fit(batches)
    return trainer_fit(batches, TRAINER_EPOCHS[contender])


def time_rounds(steps: int, rounds: int) -> dict[str, list[float]]:
    """Seconds of each contender's fit, ``rounds`` times, in a shuffled order per round."""
    batches = make_batches(steps)
    for contender in CONTENDERS:  # torch's kernels and the allocator warmed up
        build(contender, batches)()
    times: dict[str, list[float]] = {contender: [] for contender in CONTENDERS}
    for index in range(rounds):
        order = list(CONTENDERS)
        random.Random(index).shuffle(order)
        for contender in order:
            fit = build(contender, batches)
            start = time.perf_counter()
            done = fit()
            times[contender].append(time.perf_counter() - start)
            if done != steps:
                raise RuntimeError(f"{contender} took {done} steps, expected {steps}")
    return times


def table(times: dict[str, list[float]], steps: int) -> str:
    heading = (f"Linear({FEATURES}, 1), batch {BATCH}, {steps} steps a fit, "
               f"{len(times['raw'])} rounds; ratio: median of the rounds' paired ratios to "
               f"raw [bootstrap 95%]")
    lines = [heading, "| contender | median µs per step | x raw |", "|---|---|---|"]
    for contender, runs in times.items():
        figure = paired(runs, times["raw"])
        lines.append(f"| {contender} | {statistics.median(runs) / steps * 1e6:.1f} | "
                     f"{figure['median']:.4f} [{figure['low']:.4f}, {figure['high']:.4f}] |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="steps a fit (default 300)")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="5 steps, 2 rounds (CI)")
    args = parser.parse_args()
    steps, rounds = (5, 2) if args.quick else (args.steps, args.rounds)
    if steps < 1 or rounds < 1:
        raise SystemExit(f"--steps and --rounds take whole numbers of at least 1, got "
                         f"{steps} and {rounds}")
    torch.set_num_threads(1)
    print(table(time_rounds(steps, rounds), steps))


if __name__ == "__main__":
    main()
