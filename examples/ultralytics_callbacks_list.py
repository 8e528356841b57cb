"""Twin of the Ultralytics glossary's "How Callbacks Work": a list of callbacks passed to train.

Source: the Ultralytics glossary entry on callbacks (another edition). The page has no code; it describes callbacks
"passed as a list to a main function, such as a train method" and their uses: monitoring
performance, checkpointing the best model, logging and reporting, and resource management
("clearing GPU memory caches at specific intervals"). This script writes one small callback per
use and passes them as a list to ``model.train`` (a small MLP on scikit-learn's digits):

* ``PrintProgress`` prints the epoch's loss and validation accuracy (monitoring);
* ``SaveBest`` saves the weights when the fitness (validation accuracy) improves (checkpointing);
* ``CsvReport`` writes one row per epoch to ``results.csv``, opening the file when training starts
  and closing it at ``teardown``, which runs even when training fails (reporting);
* ``ClearCaches`` runs the garbage collector and empties the CUDA cache (when there is one) at
  every epoch end (resource management).

Run: ``python examples/ultralytics_callbacks_list.py [OUTPUT_DIR]``
(default ``runs/examples/callbacks_list``).
"""

import argparse
import csv
import gc
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from torch import nn

import hookline


class PrintProgress(hookline.Callback):
    def on_fit_epoch_end(self, trainer):
        print(f"epoch {trainer.epoch + 1}/{trainer.epochs}: loss {trainer.metrics['loss']:.4f}"
              f", val_accuracy {trainer.metrics['val_accuracy']:.4f}")


class SaveBest(hookline.Callback):
    def __init__(self, path):
        self.path = Path(path)
        self.best = None

    def on_train_start(self, trainer):
        self.best = None

    def on_fit_epoch_end(self, trainer):
        if trainer.fitness is not None and (self.best is None or trainer.fitness > self.best):
            self.best = trainer.fitness
            self.path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"model": trainer.model.state_dict(), "epoch": trainer.epoch,
                        "fitness": trainer.fitness}, self.path)
            print(f"  saved the best weights so far (fitness {trainer.fitness:.4f})")


class CsvReport(hookline.Callback):
    def __init__(self, path):
        self.path = Path(path)
        self.file = None

    def on_train_start(self, trainer):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "w", newline="")  # noqa: SIM115 - closed at on_train_end
        self.writer = None

    def on_fit_epoch_end(self, trainer):
        row = {"epoch": trainer.epoch + 1, **trainer.metrics}
        if self.writer is None:
            self.writer = csv.DictWriter(self.file, fieldnames=list(row))
            self.writer.writeheader()
        self.writer.writerow(row)

    def teardown(self, trainer):
        if self.file is not None:
            self.file.close()
            self.file = None
            print(f"  report closed: {self.path}")


class ClearCaches(hookline.Callback):
    def __init__(self):
        self.cleared = 0

    def on_train_epoch_end(self, trainer):
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        self.cleared += 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", nargs="?", default="runs/examples/callbacks_list",
                        help="where best.pt and results.csv are written")
    out = Path(parser.parse_args().output_dir)
    torch.manual_seed(0)  # a repeatable run
    x, y = load_digits(return_X_y=True)
    x = x.astype("float32") / 16.0

    model = hookline.Model(nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)),
                           optimizer="sgd", lr=0.3, loss="cross_entropy", metrics=["accuracy"])
    cleaner = ClearCaches()
    callbacks = [PrintProgress(), SaveBest(out / "best.pt"), CsvReport(out / "results.csv"),
                 cleaner]
    model.train(x, y, epochs=6, validation_split=0.2, callbacks=callbacks, verbose=0)
    print(f"caches cleared {cleaner.cleared} times")


if __name__ == "__main__":
    main()
