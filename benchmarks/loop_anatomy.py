"""Where hookline bare's time over the raw loop goes, on a model that is all framework cost.

    python benchmarks/loop_anatomy.py                # 300 steps a fit, 200 rounds (~3 min)
    python benchmarks/loop_anatomy.py --rounds 50 --steps 1000
    python benchmarks/loop_anatomy.py --model tiny-128 --steps 250  # the headline's MLP
    python benchmarks/loop_anatomy.py --quick        # a few steps, 2 rounds (the smoke test)

The default model is ``Linear(4, 1)`` on batches of 8 (MSE): its step is almost no
arithmetic, so what an engine adds shows at its largest. ``--model tiny`` and ``--model
tiny-128`` take the headline's MLP instead (32-64-10, cross-entropy, batches of 32 or 128
from ``workloads.make_data``), so the breakdown is of the figures ``engine_cost.py``
reports. Every fit is one epoch over a list of pre-cut batches, SGD, no validation, one
torch thread. Every contender runs the same batches in one process, in a shuffled order per
round (as ``engine_cost.py``), and each fit is timed alone (models and trainers built
before):

- **raw** and **raw, again** (the A/A control): ``zero_grad / forward / loss / backward /
  step`` per batch;
- **raw, recording the loss**: raw plus each step's ``loss.item()`` kept in a list, the one
  piece of per-step work hookline bare does for the ``loss`` it reports;
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
import dataclasses
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
from workloads import WORKLOADS, make_data, make_torch_model

from hookline.engine.base import SIGNALS
from hookline.engine.trainer import Trainer
from hookline.run_state import Phase
from hookline.structure import sample_count

BATCH, FEATURES = 8, 4
LEARNING_RATE = 0.01
Batches = list[tuple[torch.Tensor, torch.Tensor]]


@dataclasses.dataclass(frozen=True)
class Setup:
    """What every contender trains: a model (built afresh per fit), its loss, the batch size
    and how the batches are made."""

    describe: str
    batch_size: int
    make_model: Callable[[], torch.nn.Module]
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    make_inputs: Callable[[int, int], tuple[torch.Tensor, torch.Tensor]]  # (samples, seed)


def _linear_inputs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, FEATURES, generator=generator), torch.randn(n, 1, generator=generator)


def _mlp_setup(name: str) -> Setup:
    workload = WORKLOADS[name]

    def inputs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        sized = dataclasses.replace(workload, steps_per_epoch=-(-n // workload.batch_size),
                                    val_batches=0)
        x, y, _, _ = make_data(sized, seed)
        return x[:n], y[:n]
    sizes = "-".join(str(size) for size in workload.sizes)
    return Setup(f"MLP {sizes}, batch {workload.batch_size}, cross-entropy",
                 workload.batch_size, lambda: make_torch_model(workload, 0),
                 torch.nn.functional.cross_entropy, inputs)


SETUPS = {
    "linear": Setup(f"Linear({FEATURES}, 1), batch {BATCH}, MSE", BATCH,
                    lambda: torch.nn.Linear(FEATURES, 1), torch.nn.MSELoss(), _linear_inputs),
    "tiny": _mlp_setup("tiny"),
    "tiny-128": _mlp_setup("tiny-128"),
}


class Fit:
    """One contender's fit, built before it is timed: ``fit()`` returns the steps taken;
    ``model`` is the module it trains, ``trainer`` the Trainer (None for the raw loop)."""

    def __init__(self, run: Callable[[], int], model: torch.nn.Module,
                 trainer: Trainer | None = None) -> None:
        self.run, self.model, self.trainer = run, model, trainer

    def __call__(self) -> int:
        return self.run()


def make_batches(steps: int, seed: int = 0, setup: Setup = SETUPS["linear"]) -> Batches:
    size = setup.batch_size
    x, y = setup.make_inputs(steps * size, seed)
    return [(x[i:i + size], y[i:i + size]) for i in range(0, steps * size, size)]


def _model_and_optimizer(setup: Setup) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    model = setup.make_model()
    return model, torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)


def raw_fit(batches: Batches, setup: Setup = SETUPS["linear"], *,
            record_loss: bool = False) -> Fit:
    model, optimizer = _model_and_optimizer(setup)
    loss_fn = setup.loss_fn

    def fit() -> int:
        model.train()
        steps = 0
        losses: list[float] = []
        for x, y in batches:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            steps += 1
            if record_loss:
                losses.append(loss.item())
        if record_loss:
            sum(losses) / len(losses)  # the epoch's train loss, as reported
        return steps
    return Fit(fit, model)


def _raw_epoch(self: Trainer, epoch: int) -> None:
    """The raw loop's code as the trainer's epoch (the phase set, as the trainer's own epoch
    sets it: the first call's signature hook removes itself only in the training phase)."""
    model, optimizer, loss_fn = self.model, self.optimizer, self.loss_fn
    self.phase, self.epoch_losses, self.epoch_sizes = Phase.TRAIN, [], []
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
    self.phase, self.epoch_losses, self.epoch_sizes = Phase.TRAIN, [], []
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
    sizes: list[int] = []
    self.phase, self.epoch_losses, self.epoch_sizes, self.step_logs = Phase.TRAIN, losses, sizes, {}
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
        sizes.append(sample_count(batch))
        if signals.pending:
            signals.raise_pending()


TRAINER_EPOCHS: dict[str, Callable[[Trainer, int], None] | None] = {
    "hookline bare": None,
    "raw loop as the trainer's epoch": _raw_epoch,
    "hookline's step in a bare loop": _step_epoch,
    "minimal engine loop": _minimal_epoch,
}
RECORDING = "raw, recording the loss"
CONTENDERS = ("raw", "raw, again", RECORDING, *TRAINER_EPOCHS)


def trainer_fit(batches: Batches, epoch: Callable[[Trainer, int], None] | None,
                setup: Setup = SETUPS["linear"]) -> Fit:
    model, optimizer = _model_and_optimizer(setup)
    kind = Trainer if epoch is None else type("AnatomyTrainer", (Trainer,),
                                              {"_train_epoch": epoch})
    trainer = kind(model, optimizer=optimizer, loss=setup.loss_fn, train_data=batches,
                   epochs=1, verbose=0, metrics=None)

    def fit() -> int:
        trainer.fit()
        return trainer.step
    return Fit(fit, model, trainer)


def build(contender: str, batches: Batches, setup: Setup = SETUPS["linear"]) -> Fit:
    if contender in ("raw", "raw, again", RECORDING):
        return raw_fit(batches, setup, record_loss=contender == RECORDING)
    return trainer_fit(batches, TRAINER_EPOCHS[contender], setup)


def time_rounds(steps: int, rounds: int,
                setup: Setup = SETUPS["linear"]) -> dict[str, list[float]]:
    """Seconds of each contender's fit, ``rounds`` times, in a shuffled order per round."""
    batches = make_batches(steps, setup=setup)
    for contender in CONTENDERS:  # torch's kernels and the allocator warmed up
        build(contender, batches, setup)()
    times: dict[str, list[float]] = {contender: [] for contender in CONTENDERS}
    for index in range(rounds):
        order = list(CONTENDERS)
        random.Random(index).shuffle(order)
        for contender in order:
            fit = build(contender, batches, setup)
            start = time.perf_counter()
            done = fit()
            times[contender].append(time.perf_counter() - start)
            if done != steps:
                raise RuntimeError(f"{contender} took {done} steps, expected {steps}")
    return times


def table(times: dict[str, list[float]], steps: int, setup: Setup = SETUPS["linear"]) -> str:
    heading = (f"{setup.describe}, {steps} steps a fit, "
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
    parser.add_argument("--model", choices=sorted(SETUPS), default="linear",
                        help="linear: Linear(4, 1) at batch 8 (default); tiny, tiny-128: the "
                             "headline's MLP at batch 32 or 128")
    parser.add_argument("--quick", action="store_true", help="5 steps, 2 rounds (CI)")
    args = parser.parse_args()
    steps, rounds = (5, 2) if args.quick else (args.steps, args.rounds)
    if steps < 1 or rounds < 1:
        raise SystemExit(f"--steps and --rounds take whole numbers of at least 1, got "
                         f"{steps} and {rounds}")
    torch.set_num_threads(1)
    setup = SETUPS[args.model]
    print(table(time_rounds(steps, rounds, setup), steps, setup))


if __name__ == "__main__":
    main()
