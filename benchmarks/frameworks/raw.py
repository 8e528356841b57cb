"""The hand-written PyTorch loop: the physical limit every engine is compared against.

It reads the same DataLoader as every framework. bare: no logging, no checkpoint. typical:
the loss of every step to CSV (``.item()`` per step) and a ``torch.save`` of the best model
after each validation; early stopping is a comparison that never triggers. ``record_loss``
(``engine_cost.py``'s control only): each step's loss kept as a float (``.item()``, no device
to wait for on the CPU) and the epoch's mean train loss taken, as hookline does on the CPU for
the ``loss`` it reports. ``durable`` (``engine_cost.py``'s control only): each best-weights
save made the way a careful hand-written loop makes it survive a crash, as hookline's
ModelCheckpoint does: ``torch.save`` to a temporary file beside it, ``fsync``, ``os.replace``
over the old one, ``fsync`` of the folder, all in the loop's thread.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import torch
from spec import Fit, RunSpec
from tasks import batch_length, loss_of, val_loss_of
from workloads import LEARNING_RATE


def build(spec: RunSpec) -> Fit:
    return build_loop(spec, log_csv=spec.typical, checkpoint=spec.typical)


def save_durably(state: dict, path: Path) -> None:
    """``torch.save`` that a crash cannot leave half-written: the old file or the new one."""
    temp = path.with_name(path.name + ".tmp")
    with open(temp, "wb") as file:
        torch.save(state, file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temp, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def build_loop(spec: RunSpec, *, log_csv: bool, checkpoint: bool,
               record_loss: bool = False, durable: bool = False) -> Fit:
    model = spec.task.make_model(spec.seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    kind, train, val, epochs = spec.kind, spec.task.train, spec.task.val, spec.workload.epochs

    def fit() -> int:
        log_file = open(spec.workdir / "steps.csv", "w", newline="") if log_csv else None  # noqa: SIM115 - closed when training ends
        writer = csv.writer(log_file) if log_file else None
        best = float("inf")
        steps = 0
        try:
            for _ in range(epochs):
                model.train()
                losses = []
                for batch in train:
                    optimizer.zero_grad(set_to_none=True)
                    loss = loss_of(kind, model, batch)
                    loss.backward()
                    optimizer.step()
                    steps += 1
                    if writer is not None:
                        writer.writerow((steps, loss.item()))
                    if record_loss:
                        losses.append(loss.item())
                if record_loss:
                    sum(losses) / len(losses)  # the epoch's train loss, as reported
                if val is None:
                    continue
                model.eval()
                total, count = torch.zeros(()), 0
                with torch.no_grad():
                    for batch in val:
                        n = batch_length(batch)
                        total += val_loss_of(kind, model, batch) * n
                        count += n
                val_loss = total.item() / count
                if checkpoint and val_loss < best:
                    best = val_loss
                    if durable:
                        save_durably(model.state_dict(), spec.workdir / "best.pt")
                    else:
                        torch.save(model.state_dict(), spec.workdir / "best.pt")
        finally:
            if log_file:
                log_file.close()
        return steps

    return fit
