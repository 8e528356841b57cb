"""How the engine keeps each training step's loss for the epoch's running means.

On the CPU a step's loss is kept as a Python float: reading a CPU tensor waits for no
device, and a float holds no tensor alive (keeping a detached 0-d tensor per step cost over
ten times the instructions on the benchmark's tiny MLP, most of them in the allocator). On an
accelerator it is kept as a detached tensor, so that no step waits for the device; the
epoch reads them all with one copy. A step with named parts (or several optimizers) keeps
one row ``[total, *parts]`` as a tensor on any device.

The running means are kept by ``RunningMeans``, which adds only the steps recorded since
its last read: a callback that reads the mean every step (the Keras door's batch logs, a
progress bar, ``tloss``) costs the same per step at step 10 as at step 10,000.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["FLOAT_DEVICES", "RunningMeans", "records_floats", "restored", "stacked"]

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


def restored(saved: torch.Tensor, device: torch.device) -> list[Any]:
    """Saved losses (``stacked``'s tensor) as the engine on ``device`` records them."""
    if saved.dim() == 1 and records_floats(device):
        return saved.tolist()
    return list(saved.to(device).unbind(0))


class RunningMeans:
    """An epoch's running means, brought up to date on each read with the steps recorded
    since the last one. A CPU run's floats are summed in Python; tensors in float64
    (float32 on Apple's MPS, which has no float64), so adding a step at a time loses nothing
    a float32 mean keeps, and their means come back in the losses' own dtype. NaN marks a
    part an optimizer skipped (optimizer_frequencies), left out of that part's mean."""

    __slots__ = ("_counts", "_dtype", "_losses", "_seen", "_sums", "_total")

    def __init__(self) -> None:
        self._losses: list[Any] | None = None
        self._seen = 0
        self._total = 0.0
        self._sums: torch.Tensor | None = None
        self._counts: torch.Tensor | int = 0
        self._dtype = torch.float64

    def of(self, losses: list[Any]) -> torch.Tensor:
        """The means of ``losses`` (an epoch's non-empty record, only ever appended to):
        a 0-d tensor for a single loss, else ``[total, *parts]``. A new list (the next
        epoch) or a shorter one starts the sums again."""
        if losses is not self._losses or len(losses) < self._seen:
            self._losses, self._seen, self._total, self._sums = losses, 0, 0.0, None
        seen, self._seen = self._seen, len(losses)
        if type(losses[0]) is float:
            self._total = sum(losses[seen:], self._total)
            # scalar_tensor: a third of torch.tensor's cost (3.6 µs against 9 µs), which a
            # reader every step (the Keras door's batch logs, a progress bar) pays each time
            return torch.scalar_tensor(self._total / self._seen, dtype=torch.float64)
        if self._seen > seen:
            rows = stacked(losses[seen:])
            wide = rows.to(torch.float32 if rows.device.type == "mps" else torch.float64)
            counts: torch.Tensor | int = (~wide.isnan()).sum(0) if rows.dim() > 1 \
                else len(rows)
            sums = wide.nansum(0) if rows.dim() > 1 else wide.sum(0)
            if self._sums is None:
                self._sums, self._counts, self._dtype = sums, counts, rows.dtype
            else:
                self._sums, self._counts = self._sums + sums, self._counts + counts
        assert self._sums is not None
        return (self._sums / self._counts).to(self._dtype)
