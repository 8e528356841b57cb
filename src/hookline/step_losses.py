"""How the engine keeps each training step's loss for the epoch's running means.

On the CPU a step's loss is kept as a Python float: reading a CPU tensor waits for no
device, and a float holds no tensor alive (keeping a detached 0-d tensor per step cost over
ten times the instructions on the benchmark's tiny MLP, most of them in the allocator). On an
accelerator it is kept as a detached tensor, so that no step waits for the device; the
epoch reads them all with one copy. A step with named parts (or several optimizers) keeps
one row ``[total, *parts]`` as a tensor on any device.

The epoch's means are over samples, as Keras' and Lightning's are: each step's loss weighs
its batch's size (recorded beside it), so a short last batch counts for what it holds and the
epoch's ``loss`` is the dataset's mean loss, as ``val_loss`` is. Epochs whose batches are all
one size (most) take the plain mean, which is the same number.

The running means are kept by ``RunningMeans``, which adds only the steps recorded since
its last read: a callback that reads the mean every step (the Keras door's batch logs, a
progress bar, ``tloss``) costs the same per step at step 10 as at step 10,000.
"""

from __future__ import annotations

import operator
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
    part an optimizer skipped (optimizer_frequencies), left out of that part's mean.

    While every batch has the first one's size, the sums are plain (the same number as the
    weighted mean); the first batch of another size restarts them weighted by size."""

    __slots__ = ("_counts", "_dtype", "_losses", "_seen", "_sums", "_total", "_weighted")

    def __init__(self) -> None:
        self._losses: list[Any] | None = None
        self._seen = 0
        self._weighted = False
        self._total = 0.0
        self._sums: torch.Tensor | None = None
        self._counts: torch.Tensor | int = 0
        self._dtype = torch.float64

    def of(self, losses: list[Any], sizes: list[int]) -> torch.Tensor:
        """The means of ``losses`` (an epoch's non-empty record, only ever appended to),
        each step weighing its batch's size, ``sizes`` (one per loss): a 0-d tensor for a
        single loss, else ``[total, *parts]``. A new list (the next epoch) or a shorter one
        starts the sums again."""
        if len(sizes) != len(losses):
            raise RuntimeError(f"{len(sizes)} batch sizes for {len(losses)} losses: each "
                               f"recorded loss needs its batch's size")
        if losses is not self._losses or len(losses) < self._seen:
            self._losses, self._seen, self._weighted = losses, 0, False
            self._total, self._sums, self._counts = 0.0, None, 0
        seen, self._seen = self._seen, len(losses)
        new = sizes[seen:]
        if not self._weighted and new.count(sizes[0]) != len(new):
            # a batch of another size: from here on the sums weigh every step by its size
            self._weighted, seen, new = True, 0, sizes
            self._total, self._sums, self._counts = 0.0, None, 0
        if type(losses[0]) is float:
            if self._weighted:
                self._total = sum(map(operator.mul, losses[seen:], new), self._total)
                self._counts = int(self._counts) + sum(new)
            else:
                self._total = sum(losses[seen:], self._total)
                self._counts = self._seen
            # scalar_tensor: a third of torch.tensor's cost (3.6 µs against 9 µs), which a
            # reader every step (the Keras door's batch logs, a progress bar) pays each time
            return torch.scalar_tensor(self._total / self._counts, dtype=torch.float64)
        if self._seen > seen:
            self._add_rows(stacked(losses[seen:]), new)
        assert self._sums is not None
        return (self._sums / self._counts).to(self._dtype)

    def _add_rows(self, rows: torch.Tensor, sizes: list[int]) -> None:
        wide = rows.to(torch.float32 if rows.device.type == "mps" else torch.float64)
        several = rows.dim() > 1
        counts: torch.Tensor | int
        if self._weighted:
            weights = torch.tensor(sizes, dtype=wide.dtype).to(wide.device)
            if several:
                weights = weights[:, None]
            counts = ((~wide.isnan()) * weights if several else weights).sum(0)
            wide = wide * weights
        else:
            counts = (~wide.isnan()).sum(0) if several else len(rows)
        sums = wide.nansum(0) if several else wide.sum(0)
        if self._sums is None:
            self._sums, self._counts, self._dtype = sums, counts, rows.dtype
        else:
            self._sums, self._counts = self._sums + sums, self._counts + counts
