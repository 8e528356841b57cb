"""hookline: ``hookline.Trainer`` given the same DataLoader as every framework.

bare: no callbacks beyond the defaults, ``verbose=0``. typical: the built-in EarlyStopping and
ModelCheckpoint (best one, weights only) on val_loss, plus a per-step CSV callback
(``hookline_step_csv.py``). arrays: bare, but given the tensors behind the DataLoader as
``train_data=(x, y)``, so hookline batches them itself (its data path on arrays). Validation
computes the loss only, as for the peers.

By workload kind: the MLP and the CNN take ``loss=torch.nn.functional.cross_entropy``, the
very function the raw loop calls (``tasks.loss_of``; a ``CrossEntropyLoss()`` module would add
its ``Module.__call__`` layers, 5 Python calls a step that are the user's pick, not the
engine's); the transformer's dict batches go to the model, which computes its own loss (no
``loss=``); the custom step is a ``training_step=`` function.
"""

from __future__ import annotations

import torch
from spec import Fit, RunSpec
from tasks import loss_of
from workloads import LEARNING_RATE, NEVER_STOP_PATIENCE

import hookline
from frameworks.hookline_step_csv import StepCSVLogger
from hookline.callbacks import EarlyStopping, ModelCheckpoint


def custom_step(trainer: hookline.Trainer, batch: tuple) -> torch.Tensor:
    return loss_of("custom", trainer.model, batch)


def build(spec: RunSpec) -> Fit:
    workload, task = spec.workload, spec.task
    model = task.make_model(spec.seed)
    callbacks = []
    if spec.typical:
        callbacks = [
            EarlyStopping(monitor="val_loss", patience=NEVER_STOP_PATIENCE),
            ModelCheckpoint(dirpath=spec.workdir, monitor="val_loss", save_top_k=1,
                            save_weights_only=True),
            StepCSVLogger(spec.workdir / "steps.csv"),
        ]
    train_data: object = task.train
    val_data: object = task.val
    options: dict = {"loss": None if spec.kind == "lm" else torch.nn.functional.cross_entropy}
    if spec.variant == "arrays":
        x, y, x_val, y_val = task.arrays
        train_data = (x, y)
        val_data = (x_val, y_val) if task.val is not None else None
        options.update(batch_size=workload.batch_size, shuffle=True)
    if spec.kind == "custom":
        options["training_step"] = custom_step
    trainer = hookline.Trainer(
        model, optimizer=torch.optim.SGD(model.parameters(), lr=LEARNING_RATE), metrics=None,
        train_data=train_data, val_data=val_data, epochs=workload.epochs, seed=spec.seed,
        callbacks=callbacks, verbose=0, device="cpu", **options)

    def fit() -> int:
        trainer.fit()
        return trainer.step

    return fit
