"""hookline: ``hookline.Trainer`` on the in-memory tensors (hookline does the batching).

bare: no callbacks beyond the defaults, ``verbose=0``. typical: the built-in EarlyStopping and
ModelCheckpoint (best one, weights only) on val_loss, plus a per-step CSV callback
(``hookline_step_csv.py``). Validation computes the loss only, as for the peers.
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
    trainer = hookline.Trainer(
        model, optimizer=torch.optim.SGD(model.parameters(), lr=LEARNING_RATE),
        loss=torch.nn.CrossEntropyLoss(), metrics=None,
        train_data=(spec.x_train, spec.y_train), val_data=(spec.x_val, spec.y_val),
        epochs=workload.epochs, batch_size=workload.batch_size, shuffle=True,
        seed=spec.seed, callbacks=callbacks, verbose=0, device="cpu")

    def fit() -> int:
        trainer.fit()
        return trainer.step

    return fit
