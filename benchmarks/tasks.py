"""What a workload hands every framework: the model factory, the loaders, the step's loss.

``make_task`` builds the DataLoaders once per run; ``Task.single`` gives the one-batch loaders
the fixed-cost figures use. ``loss_of`` is the training loss as a hand-written step computes
it (the raw loop, Lightning's training_step, Ignite's process function and the custom steps
all call it), ``val_loss_of`` the validation loss.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import text
import torch
import vision
from batches import PreSliced, as_is, batch_loader
from torch import nn
from torch.utils.data import DataLoader
from workloads import LOGIT_PENALTY, Workload, make_data, make_torch_model


@dataclasses.dataclass(frozen=True)
class Task:
    kind: str
    make_model: Callable[[int], nn.Module]
    train: DataLoader
    val: DataLoader | None
    # (x_train, y_train, x_val, y_val) for the MLP kinds: hookline's data path on arrays
    arrays: tuple[torch.Tensor, ...] | None
    first_train: Any  # one training batch, made in this process
    first_val: Any

    def single(self, with_val: bool) -> Task:
        """One training batch (and one validation batch when ``with_val``), in-process."""
        def one(batch: Any) -> DataLoader:
            return DataLoader(_One(batch), batch_size=None, collate_fn=as_is)
        return dataclasses.replace(self, train=one(self.first_train),
                                   val=one(self.first_val) if with_val else None)


class _One(torch.utils.data.Dataset):
    def __init__(self, batch: Any) -> None:
        self.batch = batch

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> Any:
        return self.batch


def make_task(workload: Workload, seed: int = 0, *, workers: int = 2) -> Task:
    if workload.kind in ("mlp", "custom"):
        x, y, x_val, y_val = make_data(workload, seed)
        train = batch_loader(x, y, workload.batch_size, shuffle=True, seed=seed)
        val = batch_loader(x_val, y_val, workload.batch_size, shuffle=False)
        return Task(workload.kind, lambda s: make_torch_model(workload, s), train, val,
                    (x, y, x_val, y_val), PreSliced(x, y, batch_size=workload.batch_size)[0],
                    PreSliced(x_val, y_val, batch_size=workload.batch_size)[0])
    if workload.kind == "cnn":
        train, val = vision.loaders(workload.n_train, workload.n_val, workload.batch_size,
                                    seed, workers=workers)
        first = _collated(train.dataset, workload.batch_size)
        return Task("cnn", vision.make_cnn, train, val, None, first,
                    _collated(val.dataset, workload.batch_size))
    if workload.kind == "lm":
        train, val = text.loaders(workload.n_train, workload.n_val, workload.batch_size, seed)
        return Task("lm", text.make_lm, train, val, None,
                    _collated(train.dataset, workload.batch_size),
                    _collated(val.dataset, workload.batch_size))
    raise ValueError(f"unknown workload kind {workload.kind!r}")


def _collated(dataset: Any, size: int) -> Any:
    return torch.utils.data.default_collate([dataset[i] for i in range(size)])


def loss_of(kind: str, model: nn.Module, batch: Any) -> torch.Tensor:
    """The training loss of one batch, as a hand-written step computes it."""
    if kind == "lm":
        return model(**batch)["loss"]
    x, y = batch
    logits = model(x)
    loss = nn.functional.cross_entropy(logits, y)
    if kind == "custom":
        loss = loss + LOGIT_PENALTY * logits.pow(2).mean()
    return loss


def val_loss_of(kind: str, model: nn.Module, batch: Any) -> torch.Tensor:
    """The validation loss of one batch: the model's own for the LM, else cross-entropy."""
    if kind == "lm":
        return model(**batch)["loss"]
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


def batch_length(batch: Any) -> int:
    first = batch["input_ids"] if isinstance(batch, dict) else batch[0]
    return len(first)
