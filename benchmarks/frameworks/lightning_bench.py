"""PyTorch Lightning: a LightningModule around the same model, run by ``pl.Trainer``.

bare: no logger, no checkpointing, no progress bar, no model summary, no sanity validation.
typical: ``self.log`` of every step's loss to a CSVLogger (``log_every_n_steps=1``), plus the
built-in EarlyStopping and ModelCheckpoint (best one, weights only) on val_loss. The
training_step is the hand-written step's loss (``tasks.loss_of``) for every workload kind:
Lightning has no other door.
"""

from __future__ import annotations

import logging
import warnings

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from spec import Fit, RunSpec
from tasks import batch_length, loss_of, val_loss_of
from workloads import LEARNING_RATE, NEVER_STOP_PATIENCE


class Module(pl.LightningModule):
    def __init__(self, model: torch.nn.Module, kind: str, log_steps: bool) -> None:
        super().__init__()
        self.model = model
        self.kind = kind
        self.log_steps = log_steps

    def training_step(self, batch, batch_idx):
        loss = loss_of(self.kind, self.model, batch)
        if self.log_steps:
            self.log("train_loss", loss, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", val_loss_of(self.kind, self.model, batch), on_epoch=True,
                 batch_size=batch_length(batch))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=LEARNING_RATE)


def build(spec: RunSpec) -> Fit:
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="pytorch_lightning")
    warnings.filterwarnings("ignore", module="lightning_fabric")
    workload = spec.workload
    module = Module(spec.task.make_model(spec.seed), spec.kind, log_steps=spec.typical)
    callbacks = []
    if spec.typical:
        callbacks = [
            EarlyStopping(monitor="val_loss", patience=NEVER_STOP_PATIENCE),
            ModelCheckpoint(dirpath=spec.workdir, monitor="val_loss", save_top_k=1,
                            save_weights_only=True),
        ]
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=workload.epochs,
        logger=CSVLogger(spec.workdir) if spec.typical else False,
        log_every_n_steps=1, callbacks=callbacks, enable_checkpointing=spec.typical,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        default_root_dir=spec.workdir, limit_val_batches=None if spec.task.val else 0,
    )

    def fit() -> int:
        trainer.fit(module, spec.task.train, spec.task.val)
        return trainer.global_step

    return fit
