"""The benchmark workloads: what is trained, on which batches, for how many steps.

``kind`` says which model and data a workload uses (``tasks.py`` builds them):

- ``mlp``: an MLP of ``sizes`` on synthetic in-memory tensors, read by every contender from
  the same DataLoader of pre-cut batches (``batches.py``); the table's headline.
- ``cnn``: a small CNN on 32x32 images augmented per sample in a Dataset, through a
  DataLoader with 2 worker processes (``vision.py``).
- ``lm``: a tiny causal transformer fed dict batches, computing its own loss (``text.py``).
- ``custom``: the tiny MLP with a hand-written training step in every framework (the loss
  plus a penalty on the logits, which no default step computes).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import torch

LEARNING_RATE = 0.01
# Early stopping must watch val_loss without ever firing: the run length is fixed.
NEVER_STOP_PATIENCE = 10**6
# The custom step's extra term: this times the mean squared logit.
LOGIT_PENALTY = 1e-3


@dataclass(frozen=True)
class Workload:
    """One training job. ``sizes`` are the MLP's layer widths, input first (mlp, custom)."""

    name: str
    kind: str
    batch_size: int
    steps_per_epoch: int
    epochs: int
    val_batches: int
    sizes: tuple[int, ...] = ()
    warmup_steps: int = 20

    @property
    def steps(self) -> int:
        return self.steps_per_epoch * self.epochs

    @property
    def n_train(self) -> int:
        return self.steps_per_epoch * self.batch_size

    @property
    def n_val(self) -> int:
        return self.val_batches * self.batch_size

    @property
    def variants(self) -> tuple[str, ...]:
        """The variants the suite runs on this workload (each framework runs those it has)."""
        return ("bare", "typical", "arrays") if self.kind == "mlp" else ("bare",)

    def to_dict(self) -> dict:
        return asdict(self)


# The reference workload: 3000 steps and 12 validations.
TINY = Workload("tiny", "mlp", batch_size=32, steps_per_epoch=250, epochs=12, val_batches=32,
                sizes=(32, 64, 10))
# The same MLP at batch 128, scaled to 1500 steps (a step costs ~1.5x the tiny one).
TINY_128 = Workload("tiny-128", "mlp", batch_size=128, steps_per_epoch=125, epochs=12,
                    val_batches=8, sizes=(32, 64, 10))
# Scaled down (a step costs ~100x the tiny one); no longer in the default suite.
MEDIUM = Workload("medium", "mlp", batch_size=128, steps_per_epoch=60, epochs=4,
                  val_batches=8, sizes=(256, 1024, 1024, 10))
# A step is ~10 ms on one core: 120 steps keep a run near 2 s.
CNN = Workload("cnn", "cnn", batch_size=64, steps_per_epoch=40, epochs=3, val_batches=4,
               warmup_steps=5)
LM = Workload("transformer", "lm", batch_size=32, steps_per_epoch=50, epochs=3, val_batches=4,
              warmup_steps=5)
CUSTOM = Workload("custom-step", "custom", batch_size=32, steps_per_epoch=250, epochs=6,
                  val_batches=32, sizes=(32, 64, 10))

# A few steps each: the CI smoke run.
SMOKE = Workload("smoke", "mlp", batch_size=32, steps_per_epoch=40, epochs=2, val_batches=4,
                 sizes=(32, 64, 10))
SMOKE_CNN = Workload("smoke-cnn", "cnn", batch_size=16, steps_per_epoch=4, epochs=2,
                     val_batches=2, warmup_steps=2)
SMOKE_LM = Workload("smoke-transformer", "lm", batch_size=8, steps_per_epoch=4, epochs=2,
                    val_batches=2, warmup_steps=2)
SMOKE_CUSTOM = Workload("smoke-custom-step", "custom", batch_size=32, steps_per_epoch=10,
                        epochs=2, val_batches=2, sizes=(32, 64, 10))

WORKLOADS = {w.name: w for w in (TINY, TINY_128, MEDIUM, CNN, LM, CUSTOM, SMOKE, SMOKE_CNN,
                                 SMOKE_LM, SMOKE_CUSTOM)}


def make_data(workload: Workload, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """(x_train, y_train, x_val, y_val) for an MLP: float32 features, int64 class labels."""
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
