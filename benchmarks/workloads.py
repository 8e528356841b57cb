"""The benchmark workloads: model sizes, batch sizes, step counts and the synthetic data.

Every framework trains the same MLP shape on the same in-memory tensors, so the only thing
that differs between rows of the table is the training engine around the model.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import torch

LEARNING_RATE = 0.01
# Early stopping must watch val_loss without ever firing: the run length is fixed.
NEVER_STOP_PATIENCE = 10**6


@dataclass(frozen=True)
class Workload:
    """One MLP training job: ``sizes`` are the layer widths, input first."""

    name: str
    sizes: tuple[int, ...]
    batch_size: int
    steps_per_epoch: int
    epochs: int
    val_batches: int

    @property
    def steps(self) -> int:
        return self.steps_per_epoch * self.epochs

    @property
    def n_train(self) -> int:
        return self.steps_per_epoch * self.batch_size

    @property
    def n_val(self) -> int:
        return self.val_batches * self.batch_size

    def to_dict(self) -> dict:
        return asdict(self)


# The reference workload: 3000 steps and 12 validations.
TINY = Workload("tiny", (32, 64, 10), batch_size=32, steps_per_epoch=250, epochs=12,
                val_batches=32)
# Scaled down (a step costs ~100x the tiny one) so a full run stays within ~15 minutes.
MEDIUM = Workload("medium", (256, 1024, 1024, 10), batch_size=128, steps_per_epoch=60,
                  epochs=4, val_batches=8)
# A few steps only: for the CI smoke run.
SMOKE = Workload("smoke", (32, 64, 10), batch_size=32, steps_per_epoch=40, epochs=2,
                 val_batches=4)

WORKLOADS = {w.name: w for w in (TINY, MEDIUM, SMOKE)}


def make_data(workload: Workload, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """(x_train, y_train, x_val, y_val): float32 features, int64 class labels."""
    generator = torch.Generator().manual_seed(seed)
    n_in, n_out = workload.sizes[0], workload.sizes[-1]
    n = workload.n_train + workload.n_val
    x = torch.randn(n, n_in, generator=generator)
    # Labels from a fixed random projection, so the task is learnable and val_loss moves.
    y = (x @ torch.randn(n_in, n_out, generator=generator)).argmax(dim=1)
    cut = workload.n_train
    return x[:cut].contiguous(), y[:cut].contiguous(), x[cut:].contiguous(), y[cut:].contiguous()


def make_torch_model(workload: Workload, seed: int = 0) -> torch.nn.Sequential:
    """Linear layers with ReLU between them (none after the last: the loss takes logits)."""
    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = []
    sizes = workload.sizes
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(torch.nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)
