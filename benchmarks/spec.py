"""What every framework's ``build`` receives: the workload, the variant, the task, a workdir."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tasks import Task
from workloads import Workload

# The measured part of a run: trains, returns the optimizer steps taken.
Fit = Callable[[], int]


@dataclass(frozen=True)
class RunSpec:
    """One measured run. ``workdir`` is an empty directory for checkpoints and CSV logs.

    ``task.train`` and ``task.val`` are the DataLoaders every contender reads (``task.val``
    is None in the fixed-cost runs without validation); ``task.arrays`` are the tensors
    behind them, for hookline's data path on arrays.
    """

    workload: Workload
    variant: str
    task: Task
    workdir: Path
    seed: int = 0

    @property
    def typical(self) -> bool:
        return self.variant == "typical"

    @property
    def kind(self) -> str:
        return self.workload.kind
