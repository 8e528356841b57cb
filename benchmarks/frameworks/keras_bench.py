"""Keras 3 on its torch backend: the same MLP as ``keras.Sequential`` of Dense layers.

bare: ``model.fit`` with ``verbose=0`` and no callbacks. typical: the built-in EarlyStopping
and ModelCheckpoint (best only, weights file) on val_loss, plus a callback writing every
step's loss to CSV (Keras' own CSVLogger writes once per epoch only).
"""

from __future__ import annotations

import csv
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
from spec import Fit, RunSpec
from workloads import LEARNING_RATE, NEVER_STOP_PATIENCE


class StepCSVLogger(keras.callbacks.Callback):
    """Every step's loss to a CSV file, as the other frameworks' typical variants do."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def on_train_begin(self, logs=None):
        self.file = open(self.path, "w", newline="")  # noqa: SIM115 - closed when training ends
        self.writer = csv.writer(self.file)
        self.step = 0

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        self.writer.writerow((self.step, float(logs["loss"])))

    def on_train_end(self, logs=None):
        self.file.close()


def make_model(sizes: tuple[int, ...], seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    layers: list = [keras.Input((sizes[0],))]
    for width in sizes[1:-1]:
        layers.append(keras.layers.Dense(width, activation="relu"))
    layers.append(keras.layers.Dense(sizes[-1]))
    return keras.Sequential(layers)


def build(spec: RunSpec) -> Fit:
    workload = spec.workload
    model = make_model(workload.sizes, spec.seed)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=LEARNING_RATE),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    callbacks = []
    if spec.typical:
        callbacks = [
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=NEVER_STOP_PATIENCE),
            keras.callbacks.ModelCheckpoint(str(spec.workdir / "best.weights.h5"),
                                            monitor="val_loss", save_best_only=True,
                                            save_weights_only=True),
            StepCSVLogger(str(spec.workdir / "steps.csv")),
        ]
    data = (spec.x_train, spec.y_train)
    val = (spec.x_val, spec.y_val)

    def fit() -> int:
        history = model.fit(*data, validation_data=val, batch_size=workload.batch_size,
                            epochs=workload.epochs, shuffle=True, callbacks=callbacks,
                            verbose=0)
        assert len(history.history["val_loss"]) == workload.epochs
        return int(model.optimizer.iterations)

    return fit
