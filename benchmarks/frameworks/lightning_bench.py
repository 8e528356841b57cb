"""PyTorch Lightning: a LightningModule around the same MLP, run by ``pl.Trainer``.

bare: no logger, no checkpointing, no progress bar, no model summary, no sanity validation.
typical: ``self.log`` of every step's loss to a CSVLogger (``log_every_n_steps=1``), plus the
built-in EarlyStopping and ModelCheckpoint (best one, weights only) on val_loss.
"""

from __future__ import annotations

import logging
import warnings

import pytorch_lightning as pl
import torch
from batches import batch_loader
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from spec import Fit, RunSpec
from workloads import LEARNING_RATE, NEVER_STOP_PATIENCE, make_torch_model


class MLPModule(pl.LightningModule):
    def __init__(self, model: torch.nn.Module, log_steps: bool) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.log_steps = log_steps

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss_fn(self.model(x), y)
        if self.log_steps:
            self.log("train_loss", loss, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", self.loss_fn(self.model(x), y), on_epoch=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=LEARNING_RATE)


def build(spec: RunSpec) -> Fit:
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="pytorch_lightning")
    warnings.filterwarnings("ignore", module="lightning_fabric")
    workload = spec.workload
    module = MLPModule(make_torch_model(workload, spec.seed), log_steps=spec.typical)
    train = batch_loader(spec.x_train, spec.y_train, workload.batch_size, shuffle=True,
                         seed=spec.seed)
    val = batch_loader(spec.x_val, spec.y_val, workload.batch_size, shuffle=False)
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
        default_root_dir=spec.workdir,
    )

    def fit() -> int:
        trainer.fit(module, train, val)
        return trainer.global_step

    return fit
