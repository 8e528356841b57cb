"""Keras 3 on its torch backend, reading the same DataLoader (Keras takes one as ``x``).

The MLP is ``keras.Sequential`` of Dense layers. The CNN and the transformer are the same
torch modules as everywhere, in ``keras.layers.TorchModuleWrapper`` (Keras' way to train a
torch module), so the compute is identical and only the engine differs. The transformer
computes its own loss: ``compute_loss`` is overridden to return it (the dict batches have no
``y``). The custom step overrides ``train_step`` as Keras documents for its torch backend.

bare: ``model.fit`` with ``verbose=0`` and no callbacks. typical: the built-in EarlyStopping
and ModelCheckpoint (best only, weights file) on val_loss, plus a callback writing every
step's loss to CSV (Keras' own CSVLogger writes once per epoch only).
"""

from __future__ import annotations

import csv
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import torch
from spec import Fit, RunSpec
from workloads import LEARNING_RATE, LOGIT_PENALTY, NEVER_STOP_PATIENCE


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


class OwnLoss(keras.Model):
    """A torch model that returns ``{"loss": ...}`` given its dict batch: the loss is the
    model's output, and ``compute_loss`` hands it back."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.wrapped = keras.layers.TorchModuleWrapper(module)

    def call(self, inputs, training=False):
        return self.wrapped(inputs["input_ids"], inputs["labels"])["loss"]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return y_pred


class PenaltyStep(keras.Model):
    """The MLP with a ``train_step`` of its own: cross-entropy plus a penalty on the logits."""

    def __init__(self, net: keras.Model) -> None:
        super().__init__()
        self.net = net
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def call(self, x, training=False):
        return self.net(x, training=training)

    @property
    def metrics(self):
        return [self.loss_tracker]

    def train_step(self, data):
        x, y = data
        self.zero_grad()
        logits = self(x, training=True)
        loss = (torch.nn.functional.cross_entropy(logits, y)
                + LOGIT_PENALTY * logits.pow(2).mean())
        loss.backward()
        weights = self.trainable_weights
        with torch.no_grad():
            self.optimizer.apply([w.value.grad for w in weights], weights)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def test_step(self, data):
        x, y = data
        self.loss_tracker.update_state(torch.nn.functional.cross_entropy(self(x), y))
        return {"loss": self.loss_tracker.result()}


def _model(spec: RunSpec) -> keras.Model:
    keras.utils.set_random_seed(spec.seed)
    if spec.kind == "mlp":
        return make_model(spec.workload.sizes, spec.seed)
    if spec.kind == "custom":
        return PenaltyStep(make_model(spec.workload.sizes, spec.seed))
    module = spec.task.make_model(spec.seed)
    if spec.kind == "lm":
        return OwnLoss(module)
    first = spec.task.first_train[0]
    return keras.Sequential([keras.Input(tuple(first.shape[1:])),
                             keras.layers.TorchModuleWrapper(module)])


def build(spec: RunSpec) -> Fit:
    workload = spec.workload
    model = _model(spec)
    loss = None if spec.kind in ("lm", "custom") else \
        keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=LEARNING_RATE), loss=loss)
    callbacks = []
    if spec.typical:
        callbacks = [
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=NEVER_STOP_PATIENCE),
            keras.callbacks.ModelCheckpoint(str(spec.workdir / "best.weights.h5"),
                                            monitor="val_loss", save_best_only=True,
                                            save_weights_only=True),
            StepCSVLogger(str(spec.workdir / "steps.csv")),
        ]
    val = spec.task.val

    def fit() -> int:
        history = model.fit(spec.task.train, validation_data=val, epochs=workload.epochs,
                            callbacks=callbacks, verbose=0)
        if val is not None:
            assert len(history.history["val_loss"]) == workload.epochs
        return int(model.optimizer.iterations)

    return fit
