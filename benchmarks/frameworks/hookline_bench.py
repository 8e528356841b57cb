"""hookline: ``hookline.Trainer`` on the in-memory tensors (hookline does the batching).

bare: no callbacks beyond the defaults, ``verbose=0``. typical: the built-in EarlyStopping and
ModelCheckpoint (best one, weights only) on val_loss, plus a per-step CSV callback
(``hookline_step_csv.py``). Validation computes the loss only, as for the peers.

custom-step and dict-batch are bare runs through the other doors of "any model": a
``training_step`` function doing the default step's math, and the same arrays given as a dict
batch (``{"input": x, "y": y}``, the target taken out under ``target_key``) so the batch and
output rules run each step. Their overhead over bare is what those doors cost per step.
"""

from __future__ import annotations

import torch
from spec import Fit, RunSpec
from workloads import LEARNING_RATE, NEVER_STOP_PATIENCE, make_torch_model

import hookline
from frameworks.hookline_step_csv import StepCSVLogger
from hookline.callbacks import EarlyStopping, ModelCheckpoint


def build(spec: RunSpec) -> Fit:
    workload = spec.workload
    model = make_torch_model(workload, spec.seed)
    callbacks = []
    if spec.typical:
        callbacks = [
            EarlyStopping(monitor="val_loss", patience=NEVER_STOP_PATIENCE),
            ModelCheckpoint(dirpath=spec.workdir, monitor="val_loss", save_top_k=1,
                            save_weights_only=True),
            StepCSVLogger(spec.workdir / "steps.csv"),
        ]
    train_data: object = (spec.x_train, spec.y_train)
    val_data: object = (spec.x_val, spec.y_val)
    options: dict = {}
    if spec.variant == "custom-step":
        loss_fn = torch.nn.CrossEntropyLoss()

        def training_step(trainer: hookline.Trainer, batch: tuple) -> torch.Tensor:
            x, y = batch
            return loss_fn(trainer.model(x), y)
        options["training_step"] = training_step
    elif spec.variant == "dict-batch":
        train_data = {"input": spec.x_train, "y": spec.y_train}
        val_data = {"input": spec.x_val, "y": spec.y_val}
        options["target_key"] = "y"
    trainer = hookline.Trainer(
        model, optimizer=torch.optim.SGD(model.parameters(), lr=LEARNING_RATE),
        loss=torch.nn.CrossEntropyLoss(), metrics=None,
        train_data=train_data, val_data=val_data,
        epochs=workload.epochs, batch_size=workload.batch_size, shuffle=True,
        seed=spec.seed, callbacks=callbacks, verbose=0, device="cpu", **options)

    def fit() -> int:
        trainer.fit()
        return trainer.step

    return fit
