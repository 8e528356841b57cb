"""In-memory batching for the peers, doing the same work per batch as the raw loop.

``InMemoryBatches`` is a re-iterable of ``(x[index], y[index])``: one ``randperm`` per epoch,
one gather per batch. A ``DataLoader(TensorDataset(...), batch_size=..., shuffle=True)``
would index and collate every sample one by one, which on the tiny MLP costs more than the
step itself; the table is meant to measure the engines, not per-sample collation.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


class InMemoryBatches:
    """Batches of in-memory tensors, reshuffled on each pass when ``shuffle`` is true."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool,
                 seed: int = 0) -> None:
        self.x, self.y, self.batch_size, self.shuffle = x, y, batch_size, shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return (len(self.x) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, batch = len(self.x), self.batch_size
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator)
            for start in range(0, n, batch):
                index = order[start:start + batch]
                yield self.x[index], self.y[index]
        else:
            for start in range(0, n, batch):
                yield self.x[start:start + batch], self.y[start:start + batch]


def batch_loader(x: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool,
                 seed: int = 0) -> InMemoryBatches:
    return InMemoryBatches(x, y, batch_size, shuffle=shuffle, seed=seed)
