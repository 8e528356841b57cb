"""The hand-written PyTorch loop: the physical limit every engine is compared against.

bare: no logging, no checkpoint. typical: the loss of every step to CSV (``.item()`` per
step) and a ``torch.save`` of the best model after each validation; early stopping is a
comparison that never triggers.
"""

from __future__ import annotations

import csv

import torch
from spec import Fit, RunSpec
from workloads import LEARNING_RATE, make_torch_model


def build(spec: RunSpec) -> Fit:
    return build_loop(spec, log_csv=spec.typical, checkpoint=spec.typical)


def build_loop(spec: RunSpec, *, log_csv: bool, checkpoint: bool) -> Fit:
    model = make_torch_model(spec.workload, spec.seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    loss_fn = torch.nn.CrossEntropyLoss()
    workload = spec.workload
    x, y, x_val, y_val = spec.x_train, spec.y_train, spec.x_val, spec.y_val
    batch = workload.batch_size

    def fit() -> int:
        generator = torch.Generator().manual_seed(spec.seed)
        log_file = open(spec.workdir / "steps.csv", "w", newline="") if log_csv else None  # noqa: SIM115 - closed when training ends
        writer = csv.writer(log_file) if log_file else None
        best = float("inf")
        steps = 0
        try:
            for _ in range(workload.epochs):
                model.train()
                order = torch.randperm(len(x), generator=generator)
                for start in range(0, len(x), batch):
                    index = order[start:start + batch]
                    optimizer.zero_grad(set_to_none=True)
                    loss = loss_fn(model(x[index]), y[index])
                    loss.backward()
                    optimizer.step()
                    steps += 1
                    if writer is not None:
                        writer.writerow((steps, loss.item()))
                model.eval()
                total = torch.zeros(())
                with torch.no_grad():
                    for start in range(0, len(x_val), batch):
                        xb, yb = x_val[start:start + batch], y_val[start:start + batch]
                        total += loss_fn(model(xb), yb) * len(xb)
                val_loss = total.item() / len(x_val)
                if checkpoint and val_loss < best:
                    best = val_loss
                    torch.save(model.state_dict(), spec.workdir / "best.pt")
        finally:
            if log_file:
                log_file.close()
        return steps

    return fit
