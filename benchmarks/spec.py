"""What every framework's ``build`` receives: the workload, the variant, the data, a workdir."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from workloads import Workload

VARIANTS = ("bare", "typical")

# The measured part of a run: trains, returns the optimizer steps taken.
Fit = Callable[[], int]


@dataclass(frozen=True)
class RunSpec:
    """One measured run. ``workdir`` is an empty directory for checkpoints and CSV logs."""

    workload: Workload
    variant: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    workdir: Path
    seed: int = 0

    @property
    def typical(self) -> bool:
        return self.variant == "typical"
