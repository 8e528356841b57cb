"""The identical batches every framework reads: a DataLoader over batches cut once.

``PreSliced`` holds the batches of in-memory tensors, cut once when the run is set up; item
``i`` is batch ``i``. ``batch_loader`` wraps it in a ``DataLoader(batch_size=None)``, which
shuffles the order of the batches each epoch (a seeded ``RandomSampler``) and hands each one
over as it is. Every contender of a workload, the raw loop included, iterates that same kind
of DataLoader, so the per-step data work is the same for all and the table measures the
engines around it. A ``DataLoader(TensorDataset(...), batch_size=...)`` would index and
collate every sample one by one, which on the tiny MLP costs more than the step itself.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset


class PreSliced(Dataset):
    """Batches of tensors sharing their first dimension, cut once; item i is batch i."""

    def __init__(self, *tensors: torch.Tensor, batch_size: int) -> None:
        self.batches = list(zip(*(tensor.split(batch_size) for tensor in tensors)))

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        return self.batches[index]


def as_is(batch: Any) -> Any:
    """The collate function of pre-cut batches: none (the default would turn tuples into
    lists). Module level so it pickles for worker processes."""
    return batch


def batch_loader(x: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool,
                 seed: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(PreSliced(x, y, batch_size=batch_size), batch_size=None,
                      shuffle=shuffle, generator=generator, collate_fn=as_is)
