"""A small Optuna search on the bundled digits, with a pruner ending weak trials early.

Not a twin of a seed page: it shows the Optuna extra (``pip install 'hookline[optuna]'``), as
Keras' ``KerasPruningCallback`` and Lightning's ``PyTorchLightningPruningCallback`` are used.
Eight trials tune the learning rate, the hidden width and the dropout of an MLP; each reports
its validation loss to Optuna after every epoch through ``hookline.loggers.OptunaPruning``, and
a ``MedianPruner`` stops a trial whose loss is worse than the median of the earlier trials at
the same epoch. A pruned trial ends cleanly and ``fit()`` raises ``optuna.TrialPruned``, which
``study.optimize`` records. Runs in a few seconds on a CPU; writes nothing.

    python examples/optuna_search.py
"""

from __future__ import annotations

import optuna
import torch
from torch import nn

from hookline import Trainer
from hookline.demo import load_digits_data
from hookline.loggers import OptunaPruning

EPOCHS = 8
TRIALS = 8


def mlp(hidden: int, dropout: float) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, 10))


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(1)
    train, val = load_digits_data(seed=0)

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-4, 3e-1, log=True)
        hidden = trial.suggest_categorical("hidden", [16, 32, 64, 128])
        dropout = trial.suggest_float("dropout", 0.0, 0.5)
        torch.manual_seed(trial.number)
        trainer = Trainer(mlp(hidden, dropout), optimizer="adam", lr=lr, loss="cross_entropy",
                          train_data=train, val_data=val, epochs=EPOCHS, batch_size=64,
                          seed=trial.number, device="cpu", verbose=0,
                          callbacks=[OptunaPruning(trial, monitor="val_loss")])
        metrics = trainer.fit()  # raises optuna.TrialPruned when the pruner stops it
        print(f"trial {trial.number}: val_loss {metrics['val_loss']:.4f}, "
              f"val_accuracy {metrics['val_accuracy']:.4f} after {trainer.epoch + 1} epochs")
        return metrics["val_loss"]

    study = optuna.create_study(
        direction="minimize", sampler=optuna.samplers.TPESampler(seed=0),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1))
    study.optimize(objective, n_trials=TRIALS)

    states = optuna.trial.TrialState
    pruned = [trial for trial in study.trials if trial.state == states.PRUNED]
    complete = [trial for trial in study.trials if trial.state == states.COMPLETE]
    for trial in pruned:
        last = max(trial.intermediate_values)
        print(f"trial {trial.number}: pruned after {last + 1} of {EPOCHS} epochs "
              f"(val_loss {trial.intermediate_values[last]:.4f})")
    print(f"trials: {len(study.trials)}, complete: {len(complete)}, pruned: {len(pruned)}")
    best = study.best_trial
    params = ", ".join(f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}"
                       for name, value in best.params.items())
    print(f"best trial {best.number}: val_loss {best.value:.4f} with {params}")


if __name__ == "__main__":
    main()
