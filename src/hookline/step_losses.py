"""How the engine keeps each training step's loss for the epoch's running means.

On the CPU a step's loss is kept as a Python float: reading a CPU tensor waits for no
device, and a float holds no tensor alive (keeping a detached 0-d tensor per step cost over
ten times the instructions on the benchmark's tiny MLP, most of them in the allocator). On an
accelerator it is kept as a detached tensor, so that no step waits for the device; the
epoch reads them all with one copy. A step with named parts (or several optimizers) keeps
one row ``[total, *parts]`` as a tensor on any device.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["FLOAT_DEVICES", "mean_rows", "records_floats", "restored", "stacked"]

# Device types whose tensors are read without waiting for a device. Emptied, the CPU records
# as an accelerator does: how the tests check, on the CPU, that an accelerator's steps
# never read a value (tests/test_no_sync.py).
FLOAT_DEVICES = frozenset({"cpu"})


def records_floats(device: torch.device) -> bool:
    """Whether a step's loss on ``device`` is kept as a Python float."""
    return device.type in FLOAT_DEVICES


def stacked(losses: list[Any]) -> torch.Tensor:
    """The epoch's recorded losses as one tensor: 1-d, or 2-d ``[steps, 1 + parts]``.
    Floats become float64, which holds a float32 or float64 loss exactly."""
    if type(losses[0]) is float:
        return torch.tensor(losses, dtype=torch.float64)
    return torch.stack(losses)


def mean_rows(losses: list[Any]) -> torch.Tensor:
    """The epoch's mean of each loss column; NaN marks a part an optimizer skipped that
    batch (optimizer_frequencies), left out of its mean."""
    rows = stacked(losses)
    return rows.nanmean(0) if rows.dim() > 1 else rows.mean(0)


def restored(saved: torch.Tensor, device: torch.device) -> list[Any]:
    """Saved losses (``stacked``'s tensor) as the engine on ``device`` records them."""
    if saved.dim() == 1 and records_floats(device):
        return saved.tolist()
    return list(saved.to(device).unbind(0))
