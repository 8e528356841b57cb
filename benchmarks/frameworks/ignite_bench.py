"""PyTorch Ignite: a trainer engine and an evaluator run after each epoch.

The MLP and the CNN use ``create_supervised_trainer``/``create_supervised_evaluator``; the
transformer (dict batches, the model's own loss) and the custom step use Ignite's own door
for any step, an ``Engine`` around a process function. bare: the trainer plus a validation
handler computing the Loss metric. typical: adds the built-in EarlyStopping and Checkpoint
(best one, by val_loss) handlers, and a handler writing every step's loss to CSV. Ignite's
supervised trainer calls ``loss.item()`` on every step: that is the framework as shipped.
"""

from __future__ import annotations

import csv

import torch
from ignite.engine import Engine, Events, create_supervised_evaluator, create_supervised_trainer
from ignite.handlers import Checkpoint, DiskSaver, EarlyStopping
from ignite.metrics import Average, Loss
from spec import Fit, RunSpec
from tasks import loss_of, val_loss_of
from workloads import LEARNING_RATE, NEVER_STOP_PATIENCE


def _engines(spec: RunSpec, model: torch.nn.Module,
             optimizer: torch.optim.Optimizer) -> tuple[Engine, Engine]:
    kind = spec.kind
    if kind in ("mlp", "cnn"):
        loss_fn = torch.nn.CrossEntropyLoss()
        return (create_supervised_trainer(model, optimizer, loss_fn),
                create_supervised_evaluator(model, metrics={"loss": Loss(loss_fn)}))

    def train_step(engine: Engine, batch) -> float:
        model.train()
        optimizer.zero_grad()
        loss = loss_of(kind, model, batch)
        loss.backward()
        optimizer.step()
        return loss.item()

    def val_step(engine: Engine, batch):
        model.eval()
        with torch.no_grad():
            return val_loss_of(kind, model, batch)

    evaluator = Engine(val_step)
    Average().attach(evaluator, "loss")  # the batches are all full: the mean over samples
    return Engine(train_step), evaluator


def build(spec: RunSpec) -> Fit:
    workload = spec.workload
    model = spec.task.make_model(spec.seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    trainer, evaluator = _engines(spec, model, optimizer)
    val = spec.task.val

    if val is not None:
        @trainer.on(Events.EPOCH_COMPLETED)
        def validate(engine):
            evaluator.run(val)

    if spec.typical:
        def score(engine):
            return -engine.state.metrics["loss"]

        evaluator.add_event_handler(Events.COMPLETED, EarlyStopping(
            patience=NEVER_STOP_PATIENCE, score_function=score, trainer=trainer))
        evaluator.add_event_handler(Events.COMPLETED, Checkpoint(
            {"model": model}, DiskSaver(str(spec.workdir), require_empty=False),
            n_saved=1, score_function=score, score_name="neg_val_loss"))
        log_file = open(spec.workdir / "steps.csv", "w", newline="")  # noqa: SIM115 - closed when training ends
        writer = csv.writer(log_file)

        @trainer.on(Events.ITERATION_COMPLETED)
        def log_step(engine):
            writer.writerow((engine.state.iteration, engine.state.output))

        trainer.add_event_handler(Events.COMPLETED, lambda engine: log_file.close())

    def fit() -> int:
        trainer.run(spec.task.train, max_epochs=workload.epochs)
        return trainer.state.iteration

    return fit
