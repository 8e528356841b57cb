"""The Keras door's steps: train_step/test_step/predict_step overrides with Keras 3's meaning,
compute_loss and compute_metrics, several and named inputs, sample and class weights."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import hookline
from hookline.keras import unpack_x_y_sample_weight
from hookline.testing import tiny_data, tiny_model


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    left, right = a.state_dict(), b.state_dict()
    assert [k for k in left if not torch.equal(left[k], right[k])] == []


def sgd(params: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=0.1)


def default_fit(**options: Any) -> tuple[nn.Module, hookline.History]:
    x, y = tiny_data(32)
    net = tiny_model()
    model = hookline.Model(net, optimizer=sgd, loss="cross_entropy", metrics=["accuracy"],
                           device="cpu")
    history = model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0, **options)
    return net, history


class KerasStyleStep(hookline.Model):
    """The torch-backend train_step of Keras 3's "customizing fit()" guide, ported."""

    calls = 0

    def train_step(self, data: Any) -> dict[str, Any]:
        type(self).calls += 1
        x, y = data
        self.zero_grad()
        y_pred = self(x, training=True)
        loss = self.compute_loss(y=y, y_pred=y_pred)
        loss.backward()
        trainable_weights = self.trainable_weights
        gradients = [v.grad for v in trainable_weights]
        with torch.no_grad():
            self.optimizer.apply(gradients, trainable_weights)
        return {"loss": loss, **self.compute_metrics(x, y, y_pred)}


def test_an_overridden_train_step_runs_instead_and_matches_the_default() -> None:
    reference, expected = default_fit()
    x, y = tiny_data(32)
    net = tiny_model()
    model = KerasStyleStep(net, optimizer=sgd, loss="cross_entropy", metrics=["accuracy"],
                           device="cpu")
    history = model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    assert KerasStyleStep.calls == 8
    assert_same_weights(net, reference)
    assert history.history["loss"] == pytest.approx(expected.history["loss"])
    assert history.history["accuracy"] == pytest.approx(expected.history["accuracy"])
    assert model._trainer is not None and model._trainer.step == 8


def test_super_train_step_is_keras_default_step() -> None:
    reference, _ = default_fit()

    class Counting(hookline.Model):
        seen = 0

        def train_step(self, data: Any) -> dict[str, Any]:
            type(self).seen += 1
            return super().train_step(data)
    x, y = tiny_data(32)
    net = tiny_model()
    Counting(net, optimizer=sgd, loss="cross_entropy", device="cpu").fit(
        x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    assert Counting.seen == 8
    assert_same_weights(net, reference)


def test_train_step_logs_without_a_loss_are_an_error() -> None:
    class NoLoss(hookline.Model):
        def train_step(self, data: Any) -> dict[str, Any]:
            return {"accuracy": torch.tensor(1.0)}
    x, y = tiny_data(8)
    with pytest.raises(ValueError, match=r"train_step must return logs with a 'loss' entry"):
        NoLoss(tiny_model(), loss="cross_entropy", device="cpu").fit(x, y, verbose=0)


def test_overridden_test_step_and_predict_step_are_used() -> None:
    class Halved(hookline.Model):
        def test_step(self, data: Any) -> dict[str, Any]:
            x, y, _ = unpack_x_y_sample_weight(data)
            y_pred = self(x, training=False)
            return {"loss": self.compute_loss(y=y, y_pred=y_pred) / 2,
                    **self.compute_metrics(x, y, y_pred)}

        def predict_step(self, data: Any) -> Any:
            x, _, _ = unpack_x_y_sample_weight(data)
            return self(x, training=False).softmax(-1)
    x, y = tiny_data(16)
    net = tiny_model()
    plain = hookline.Model(net, loss="cross_entropy", metrics=["accuracy"], device="cpu")
    halved = Halved(net, loss="cross_entropy", metrics=["accuracy"], device="cpu")
    full = plain.evaluate(x, y, verbose=0, return_dict=True)
    half = halved.evaluate(x, y, verbose=0, return_dict=True)
    assert half["loss"] == pytest.approx(full["loss"] / 2)
    assert half["accuracy"] == pytest.approx(full["accuracy"])
    probabilities = halved.predict(x)
    assert np.allclose(probabilities.sum(-1), 1.0)


class MetricsInTestStep(hookline.Model):
    """Keras' "customizing evaluate()" test_step: the metrics updated by compute_metrics."""

    def test_step(self, data: Any) -> dict[str, Any]:
        x, y = data
        y_pred = self(x, training=False)
        return {"loss": self.compute_loss(y=y, y_pred=y_pred),
                **self.compute_metrics(x, y, y_pred)}


def test_compute_metrics_in_a_test_step_updates_fit_s_validation_metrics() -> None:
    """fit's validation passes (mid-epoch ones included) went into the running training
    metrics, and the validation metrics saw nothing (a ValueError)."""
    x, y = tiny_data(32)
    x_val, y_val = tiny_data(16, seed=1)

    class HandAccuracy(hookline.keras.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.reported: list[float] = []
            self.by_hand: list[float] = []

        def on_test_end(self, logs: dict | None = None) -> None:
            assert self.model is not None and logs is not None
            with torch.no_grad():
                predicted = self.model.module(x_val).argmax(-1)
            self.by_hand.append((predicted == y_val).float().mean().item())
            self.reported.append(logs["accuracy"])

    runs = []
    for cls in (hookline.Model, MetricsInTestStep):
        net, hand = tiny_model(), HandAccuracy()
        model = cls(net, optimizer=sgd, loss="cross_entropy", metrics=["accuracy"],
                    device="cpu")
        history = model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0,
                            validation_data=(x_val, y_val), val_check_interval=2,
                            callbacks=[hand])
        runs.append((net, history.history, hand))
    (reference, expected, _), (net, logged, hand) = runs
    assert len(hand.reported) == 4  # two a epoch: after batch 2 and at the epoch's end
    assert hand.reported == pytest.approx(hand.by_hand)
    assert logged["val_accuracy"] == pytest.approx(hand.by_hand[1::2])
    assert logged["accuracy"] == pytest.approx(expected["accuracy"])  # training's own batches
    assert logged["val_loss"] == pytest.approx(expected["val_loss"])
    assert_same_weights(net, reference)


def dropout_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.Dropout(0.5), nn.Linear(32, 3))


def modes(module: nn.Module) -> list[bool]:
    return [submodule.training for submodule in module.modules()]


def test_training_selects_the_layers_mode_for_one_call_as_in_keras() -> None:
    """training=False in a train_step ran dropout anyway, and training=True in a test_step
    ran in eval mode: the argument was ignored."""
    seen: dict[str, list[Any]] = {"train": [], "test": []}

    class Modes(hookline.Model):
        def train_step(self, data: Any) -> dict[str, Any]:
            before = modes(self.module)
            x, _ = data
            first, second = self(x, training=False), self(x, training=False)
            seen["train"].append((torch.equal(first, second), before, modes(self.module)))
            return super().train_step(data)

        def test_step(self, data: Any) -> dict[str, Any]:
            before = modes(self.module)
            x, _ = data
            first, second = self(x, training=True), self(x, training=True)
            seen["test"].append((torch.equal(first, second), before, modes(self.module)))
            return super().test_step(data)

    class FreezeNorm(hookline.keras.Callback):  # the user keeps the batch norm in eval
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            assert self.model is not None
            self.model.module[1].eval()

    x, y = tiny_data(32)
    net = dropout_net()
    model = Modes(net, optimizer=sgd, loss="cross_entropy", device="cpu")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, validation_data=(x, y),
              callbacks=[FreezeNorm()])
    model.evaluate(x, y, batch_size=8, verbose=0)
    assert len(seen["train"]) == 4 and len(seen["test"]) == 8
    frozen = [True, True, False, True, True]  # Sequential, Linear, BatchNorm1d, Dropout, Linear
    assert seen["train"] == [(True, frozen, frozen)] * 4  # no dropout; the modes as they were
    assert all(not same and before == after == [False] * 5
               for same, before, after in seen["test"])

    unused = hookline.Model(dropout_net(), device="cpu")  # outside a step: the same rule
    assert torch.equal(unused(x, training=False), unused(x, training=False))
    assert modes(unused.module) == [True] * 5


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(8, 3), nn.Linear(4, 3)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.a(a) + self.b(b)


def test_fit_takes_lists_and_dicts_of_arrays_as_keras_does() -> None:
    x, y = tiny_data(32)
    b = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    trained = []
    for inputs in ([x.numpy(), b], {"a": x.numpy(), "b": b}):
        net = TwoInputs()
        model = hookline.Model(net, optimizer=sgd, loss="cross_entropy", device="cpu")
        model.fit(inputs, y.numpy(), epochs=2, batch_size=8, validation_split=0.25,
                  shuffle=False, verbose=0)
        trained.append(net)
        assert model.predict(inputs).shape == (32, 3)
    assert_same_weights(*trained)


def test_sample_weight_and_class_weight_weigh_the_loss() -> None:
    x, y = tiny_data(32)
    class_weight = {0: 1.0, 1: 2.0, 2: 0.5}
    by_class, by_sample = tiny_model(), tiny_model()
    for net, options in [(by_class, {"class_weight": class_weight}),
                         (by_sample, {"sample_weight": torch.tensor(
                             [class_weight[int(label)] for label in y])})]:
        hookline.Model(net, optimizer=sgd, loss="cross_entropy", device="cpu").fit(
            x, y, epochs=1, batch_size=8, shuffle=False, verbose=0, **options)
    assert_same_weights(by_class, by_sample)
    unweighted, _ = default_fit()
    assert not torch.equal(by_class[0].weight, unweighted[0].weight)
    with pytest.raises(ValueError, match=r"class_weight has no weight for classes \[2\]"):
        hookline.Model(tiny_model(), loss="cross_entropy", device="cpu").fit(
            x, y, class_weight={0: 1.0, 1: 1.0}, verbose=0)


def test_class_weight_reads_one_hot_targets_by_their_argmax_and_batch_size_none_is_32() -> None:
    """Keras weighs one-hot rows by their class (argmax), and takes batch_size=None as 32."""
    x, y = tiny_data(64)
    one_hot = nn.functional.one_hot(y, 3).float()
    class_weight = {0: 1.0, 1: 2.0, 2: 0.5}
    by_class, by_sample = tiny_model(), tiny_model()
    for net, options in [(by_class, {"class_weight": class_weight, "batch_size": None}),
                         (by_sample, {"sample_weight": torch.tensor(
                             [class_weight[int(label)] for label in y]), "batch_size": 32})]:
        hookline.Model(net, optimizer=sgd, loss="cross_entropy", device="cpu").fit(
            x, one_hot, epochs=1, shuffle=False, verbose=0, **options)
    assert_same_weights(by_class, by_sample)
    model = hookline.Model(by_class, loss="cross_entropy", device="cpu")
    sizes = []
    recorder = hookline.keras.LambdaCallback(
        on_predict_batch_end=lambda batch, logs: sizes.append(len(logs["outputs"])))
    assert model.predict(x, batch_size=None, callbacks=[recorder]).shape == (64, 3)
    assert sizes == [32, 32]
    assert model.evaluate(x, y, batch_size=None, verbose=0) == model.evaluate(x, y, verbose=0)


def test_a_model_that_computes_its_own_loss_needs_no_compiled_loss() -> None:
    class OwnLoss(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = tiny_model()

        def forward(self, features: torch.Tensor,
                    labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
            logits = self.net(features)
            out = {"logits": logits}
            if labels is not None:
                out["loss"] = nn.functional.cross_entropy(logits, labels)
            return out
    x, y = tiny_data(32)
    model = hookline.Model(OwnLoss(), optimizer="adam", lr=0.05, device="cpu",
                           metrics=["accuracy"])
    history = model.fit({"features": x, "labels": y}, epochs=4, batch_size=8, verbose=0,
                        validation_data={"features": x, "labels": y})
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    assert "val_accuracy" in history.history
