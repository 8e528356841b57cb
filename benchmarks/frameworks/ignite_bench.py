"""PyTorch Ignite: ``create_supervised_trainer`` and an evaluator run after each epoch.

bare: the trainer plus a validation handler computing the Loss metric. typical: adds the
built-in EarlyStopping and Checkpoint (best one, by val_loss) handlers, and a handler writing
every step's loss to CSV. Ignite's default output transform already calls ``loss.item()`` on
every step, in both variants: that is the framework as shipped.
"""

from __future__ import annotations

import csv

import torch
from batches import batch_loader
from ignite.engine import Events, create_supervised_evaluator, create_supervised_trainer
from ignite.handlers import Checkpoint, DiskSaver, EarlyStopping
from ignite.metrics import Loss
from spec import Fit, RunSpec
from workloads import LEARNING_RATE, NEVER_STOP_PATIENCE, make_torch_model


def build(spec: RunSpec) -> Fit:
    workload = spec.workload
    model = make_torch_model(workload, spec.seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    loss_fn = torch.nn.CrossEntropyLoss()
    trainer = create_supervised_trainer(model, optimizer, loss_fn)
    evaluator = create_supervised_evaluator(model, metrics={"loss": Loss(loss_fn)})
    train = batch_loader(spec.x_train, spec.y_train, workload.batch_size, shuffle=True,
                         seed=spec.seed)
    val = batch_loader(spec.x_val, spec.y_val, workload.batch_size, shuffle=False)

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
        trainer.run(train, max_epochs=workload.epochs)
        return trainer.state.iteration

    return fit
