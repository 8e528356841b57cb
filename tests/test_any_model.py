"""Any model: replaceable steps, structured batches and outputs, sample weights, loss parts.

Each path is checked against a hand-written PyTorch loop on the same seed (bit for bit), and
the mid-epoch resume of each is exact.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import hookline
from hookline.callbacks import CSVLogger, OnExceptionCheckpoint
from hookline.testing import Crash, crash_at, tiny_data, tiny_model


def sgd(params: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=0.1)


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    left, right = a.state_dict(), b.state_dict()
    assert [k for k in left if not torch.equal(left[k], right[k])] == []


def batches_of(*arrays: torch.Tensor, size: int) -> list[tuple[torch.Tensor, ...]]:
    return [tuple(a[i:i + size] for a in arrays) for i in range(0, len(arrays[0]), size)]


class TwoInputs(nn.Module):
    """forward(a, b): a model that needs two inputs."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.left, self.right = nn.Linear(8, 16), nn.Linear(4, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.left(a) + self.right(b)))


class OwnLoss(nn.Module):
    """Hugging Face's shape: keyword inputs, a dict output with ``loss`` when labels are given."""

    def __init__(self) -> None:
        super().__init__()
        self.net = tiny_model()

    def forward(self, features: torch.Tensor, scale: torch.Tensor,
                labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        logits = self.net(features * scale[:, None])
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits, labels)
        return out


class TinyVAE(nn.Module):
    """Declares its own training step (Lightning's way) returning two named losses."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder, self.decoder = nn.Linear(8, 4), nn.Linear(2, 8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return self.decoder(z), mu, logvar

    def training_step(self, batch: Any) -> dict[str, torch.Tensor]:
        x = batch[0]
        recon, mu, logvar = self(x)
        return {"recon": nn.functional.mse_loss(recon, x),
                "kl": -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).mean()}

    validation_step = training_step


def fit(model: nn.Module, data: Any, **options: Any) -> hookline.Trainer:
    settings: dict[str, Any] = dict(optimizer=sgd, train_data=data, batch_size=8, epochs=2,
                                    shuffle=False, verbose=0, device="cpu",
                                    default_callbacks=False)
    settings.update(options)
    trainer = hookline.Trainer(model, **settings)
    trainer.fit()
    return trainer


# --- batches ------------------------------------------------------------------------------
def test_several_inputs_call_the_model_with_each_and_match_a_hand_loop() -> None:
    x, y = tiny_data(24)
    b = torch.randn(24, 4, generator=torch.Generator().manual_seed(3))
    reference = TwoInputs()
    optimizer = sgd(reference.parameters())
    for _ in range(2):
        for xa, xb, yb in batches_of(x, b, y, size=8):
            nn.functional.cross_entropy(reference(xa, xb), yb).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    for data in [((x, b), y), [((xa, xb), yb) for xa, xb, yb in batches_of(x, b, y, size=8)]]:
        model = TwoInputs()
        fit(model, data, loss="cross_entropy")
        assert_same_weights(model, reference)


def test_named_inputs_in_a_dict_call_the_model_with_keywords() -> None:
    x, y = tiny_data(24)
    b = torch.randn(24, 4)
    by_position, by_name = TwoInputs(), TwoInputs()
    fit(by_position, ((x, b), y), loss="cross_entropy")
    fit(by_name, ({"b": b, "a": x}, y), loss="cross_entropy")
    assert_same_weights(by_position, by_name)


def test_sample_weight_weighs_the_loss_and_weighted_metrics_as_keras_does() -> None:
    x, y = tiny_data(24)
    w = torch.linspace(0.0, 2.0, 24)
    reference = tiny_model()
    optimizer = sgd(reference.parameters())
    for _ in range(2):
        for xb, yb, wb in batches_of(x, y, w, size=8):
            per_sample = nn.functional.cross_entropy(reference(xb), yb, reduction="none")
            ((per_sample * wb).sum() / len(xb)).backward()  # Keras' sum_over_batch_size
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    model = tiny_model()
    trainer = fit(model, (x, y, w), loss="cross_entropy", val_data=(x, y, w),
                  metrics=["accuracy"], weighted_metrics=["accuracy"])
    assert_same_weights(model, reference)
    with torch.no_grad():
        logits = reference(x)
        hits = (logits.argmax(1) == y).float()
        losses = nn.functional.cross_entropy(logits, y, reduction="none") * w
    expected_loss = torch.stack([chunk.sum() / 8 for chunk in losses.split(8)]).mean()
    metrics = trainer.metrics
    assert metrics["val_accuracy"] == pytest.approx(float(hits.mean()))  # unweighted
    assert metrics["val_weighted_accuracy"] == pytest.approx(float((hits * w).sum() / w.sum()))
    assert metrics["val_weighted_accuracy"] != pytest.approx(metrics["val_accuracy"])
    assert metrics["val_loss"] == pytest.approx(float(expected_loss))


class Tagger(nn.Module):
    """Logits (N, C, T) for each position of a sequence (N, T, 8), as a tagger gives them."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x).transpose(1, 2)


@pytest.mark.parametrize("options", [
    {}, {"weight": torch.tensor([0.5, 2.0, 1.0])},
    {"weight": torch.tensor([0.5, 2.0, 1.0]), "label_smoothing": 0.1}])
def test_sample_weights_divide_by_the_positions_the_loss_counts(options: dict) -> None:
    """A padded position (ignore_index) counted as a zero loss in each sample's mean, so
    weights of ones shrank the loss of padded sequences; torch's mean divides by the class
    weights of the positions it keeps, and a weighted loss divides by the same."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(16, 6, 8, generator=generator)
    y = torch.randint(0, 3, (16, 6), generator=generator)
    lengths = torch.randint(1, 7, (16,), generator=generator)
    y[torch.arange(6) >= lengths[:, None]] = -100  # padding of varying lengths
    w = torch.rand(16, generator=generator) * 2
    loss = nn.CrossEntropyLoss(ignore_index=-100, **options)
    plain, ones, weighted = Tagger(), Tagger(), Tagger()
    unweighted = fit(plain, (x, y), loss=loss, val_data=(x, y), metrics=None)
    by_ones = fit(ones, (x, y, torch.ones(16)), loss=loss, val_data=(x, y, torch.ones(16)),
                  metrics=None)
    assert by_ones.metrics["val_loss"] == pytest.approx(unweighted.metrics["val_loss"], rel=1e-6)
    for left, right in zip(plain.parameters(), ones.parameters()):
        torch.testing.assert_close(left, right)
    trainer = fit(weighted, (x, y, w), loss=loss, val_data=(x, y, w), metrics=None)
    class_weight = options.get("weight", torch.ones(3))
    expected = []
    with torch.no_grad():
        for xb, yb, wb in batches_of(x, y, w, size=8):
            per_position = nn.functional.cross_entropy(
                weighted(xb), yb, reduction="none", ignore_index=-100, **options)
            counted = class_weight[yb.clamp(min=0)] * (yb != -100)
            expected.append((per_position * wb[:, None]).sum() / counted.sum())
    assert trainer.metrics["val_loss"] == pytest.approx(float(torch.stack(expected).mean()))


def test_a_loss_that_cannot_weigh_samples_is_an_error_not_ignored() -> None:
    x, y = tiny_data(8)
    def mean_only(preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(preds, target)
    with pytest.raises(TypeError, match="the batches carry sample_weight but the loss "
                                        "mean_only cannot weigh samples"):
        fit(tiny_model(), (x, y, torch.ones(8)), loss=mean_only)


@pytest.mark.parametrize(("data", "message"), [
    (lambda x, y: [(x, y, torch.ones(8), torch.ones(8))], "a batch of 4 elements fits no rule"),
    (lambda x, y: (x, x[:, :4], y), r"the third element of a batch is sample_weight"),
    (lambda x, y: (x, y, torch.ones(8, dtype=torch.long)), "one float weight per sample"),
    (lambda x, y: [(x, y, torch.ones(5))], "sample_weight has 5 weights but the batch has 8"),
    (lambda x, y: [{"features": x, "y_true": y}], r"target_key='labels' is not in the batch"),
])
def test_a_batch_that_fits_no_rule_names_the_rule(data: Any, message: str) -> None:
    x, y = tiny_data(8)
    options = {"target_key": "labels"} if "target_key" in message else {}
    with pytest.raises(ValueError, match=message):
        fit(tiny_model(), data(x, y), loss="cross_entropy", **options)


def test_a_dict_batch_goes_to_the_model_which_computes_its_own_loss() -> None:
    x, y = tiny_data(24)
    scale = torch.rand(24) + 0.5
    reference = OwnLoss()
    optimizer = sgd(reference.parameters())
    for _ in range(2):
        for xb, sb, yb in batches_of(x, scale, y, size=8):
            reference(xb, sb, labels=yb)["loss"].backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    model = OwnLoss()
    data = {"features": x, "scale": scale, "labels": y}
    trainer = fit(model, data, val_data=data, metrics=["accuracy"])  # no loss=
    assert_same_weights(model, reference)
    assert {"loss", "val_loss", "val_accuracy"} <= set(trainer.metrics)
    # with a loss function the target is taken out of the dict instead
    taken_out = OwnLoss()
    fit(taken_out, data, loss=lambda out, target: nn.functional.cross_entropy(
        out["logits"], target))
    assert_same_weights(taken_out, reference)


# --- outputs ------------------------------------------------------------------------------
class TupleOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = tiny_model()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(x)
        return logits, logits.detach().norm(dim=1)


@pytest.mark.parametrize("metrics", [None, ["accuracy"]])
def test_a_tuple_output_model_validates_with_and_without_metrics(metrics: Any) -> None:
    x, y = tiny_data(24)
    trainer = fit(TupleOut(), (x, y), val_data=(x, y), loss="cross_entropy", metrics=metrics)
    assert "val_loss" in trainer.metrics
    assert ("val_accuracy" in trainer.metrics) == (metrics is not None)
    results = trainer.predict(x[:4])
    assert [r.output.shape for r in results] == [torch.Size([3])] * 4  # the first element


def test_prediction_picks_what_metrics_receive() -> None:
    x, y = tiny_data(24)
    seen: list[torch.Size] = []

    def spy(preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        seen.append(preds.shape)
        return preds.mean()
    for choice in [1, lambda output: output[1]]:
        seen.clear()
        fit(TupleOut(), (x, y), val_data=(x, y), epochs=1,
            loss=lambda out, t: nn.functional.cross_entropy(out[0], t), metrics=[spy],
            prediction=choice)
        assert set(seen) == {torch.Size([8])}
    with pytest.raises(ValueError, match=r"prediction='scores' is not in the model's output"):
        fit(TupleOut(), (x, y), epochs=1, loss="cross_entropy", prediction="scores")


def test_a_model_with_no_loss_and_no_loss_function_is_a_clear_error() -> None:
    x, y = tiny_data(8)
    with pytest.raises(TypeError, match=r"the model returned Tensor\(8, 3\), which holds no "
                                        r"loss: pass loss="):
        fit(tiny_model(), (x, y))


# --- replaceable steps -------------------------------------------------------------------
def default_reference() -> nn.Module:
    x, y = tiny_data(24)
    model = tiny_model()
    fit(model, (x, y), loss="cross_entropy")
    return model


def custom_step(trainer: hookline.Trainer, batch: Any) -> torch.Tensor:
    x, y = batch
    return nn.functional.cross_entropy(trainer.model(x), y)


class SubclassTrainer(hookline.Trainer):
    def training_step(self, batch: Any) -> dict[str, torch.Tensor]:
        x, y = batch
        logits = self.model(x)
        return {"loss": nn.functional.cross_entropy(logits, y), "preds": logits, "target": y}


class DeclaresStep(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = tiny_model()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)


def manual_step(trainer: hookline.Trainer, batch: Any) -> torch.Tensor:
    x, y = batch
    loss = nn.functional.cross_entropy(trainer.model(x), y)
    trainer.backward(loss)
    trainer.step_optimizer()
    return loss.detach()


@pytest.mark.parametrize("how", ["function", "subclass", "model method", "manual"])
def test_every_way_to_replace_the_step_trains_like_the_default(how: str) -> None:
    x, y = tiny_data(24)
    if how == "function":
        model = tiny_model()
        fit(model, (x, y), training_step=custom_step)
    elif how == "subclass":
        model = tiny_model()
        trainer = SubclassTrainer(model, optimizer=sgd, train_data=(x, y), batch_size=8,
                                  epochs=2, shuffle=False, verbose=0, device="cpu",
                                  default_callbacks=False, train_metrics=True,
                                  metrics=["accuracy"])
        trainer.fit()
        assert "accuracy" in trainer.metrics  # preds and target returned by the step
    elif how == "model method":
        declared = DeclaresStep()
        fit(declared, (x, y))
        model = declared.net
    else:
        model = tiny_model()
        trainer = fit(model, (x, y), training_step=manual_step, automatic_optimization=False)
        assert trainer.step == 6
    assert_same_weights(model, default_reference())


def test_train_metrics_without_predictions_from_a_custom_step_is_an_error() -> None:
    x, y = tiny_data(16)
    with pytest.raises(ValueError, match=r"metrics \['accuracy'\] saw no prediction"):
        fit(tiny_model(), (x, y), training_step=custom_step, train_metrics=True,
            metrics=["accuracy"])


# --- named loss parts ---------------------------------------------------------------------
def vae_reference() -> tuple[nn.Module, list[list[float]]]:
    x, _ = tiny_data(24)
    model = TinyVAE()
    optimizer = sgd(model.parameters())
    torch.manual_seed(5)  # what Trainer(seed=5) does when fit starts
    epochs = []
    for _ in range(2):
        rows = []
        for (xb,) in batches_of(x, size=8):
            parts = model.training_step((xb,))
            total = parts["recon"] + parts["kl"]
            total.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            rows.append([float(total.detach()), float(parts["recon"].detach()),
                         float(parts["kl"].detach())])
        epochs.append(torch.tensor(rows).mean(0).tolist())
        with torch.no_grad():  # validation draws its noise from the same generator
            for (xb,) in batches_of(x, size=8):
                model.validation_step((xb,))
    return model, epochs


def test_named_loss_parts_are_summed_logged_and_kept_as_tensors(tmp_path: Path) -> None:
    x, _ = tiny_data(24)
    reference, means = vae_reference()
    model = TinyVAE()
    ends: list[tuple[Any, Any]] = []
    trainer = hookline.Trainer(
        model, optimizer=sgd, train_data=(x,), val_data=(x,), batch_size=8, epochs=2, seed=5,
        shuffle=False, verbose=0, device="cpu", callbacks=[CSVLogger(tmp_path / "log.csv")])
    trainer.add_callback("on_train_batch_end",
                         lambda t: ends.append((t.loss_items, t.tloss)))
    trainer.fit()
    assert_same_weights(model, reference)
    assert trainer.loss_names == ["recon", "kl"]
    items, tloss = ends[-1]
    assert items.shape == (2,) and tloss.shape == (2,)  # tensors, as Ultralytics has them
    assert tloss.tolist() == pytest.approx(means[1][1:])
    assert trainer.metrics["loss"] == pytest.approx(means[1][0])
    assert trainer.metrics["train/recon"] == pytest.approx(means[1][1])
    assert {"val_loss", "val/recon", "val/kl"} <= set(trainer.metrics)
    history = trainer.callbacks.find(hookline.History)[0].history
    assert history["train/kl"] == pytest.approx([row[2] for row in means])
    with open(tmp_path / "log.csv") as file:
        header = next(csv.reader(file))
    assert {"train/recon", "train/kl", "val/recon", "val/kl"} <= set(header)


def test_loss_parts_must_keep_their_names() -> None:
    x, _ = tiny_data(16)
    calls = [0]

    def step(trainer: hookline.Trainer, batch: Any) -> dict[str, torch.Tensor]:
        calls[0] += 1
        out = trainer.model(batch[0]).pow(2).mean()
        return {"a": out, "b": out} if calls[0] == 1 else {"a": out}
    with pytest.raises(ValueError, match=r"returned loss parts \['a'\] after \['a', 'b'\]"):
        fit(tiny_model(), (x,), training_step=step)


def test_a_loss_entry_is_the_total_and_the_parts_are_logged_beside_it() -> None:
    x, y = tiny_data(16)

    def step(trainer: hookline.Trainer, batch: Any) -> dict[str, torch.Tensor]:
        ce = nn.functional.cross_entropy(trainer.model(batch[0]), batch[1])
        return {"loss": 2 * ce, "ce": ce}
    trainer = fit(tiny_model(), (x, y), training_step=step, epochs=1)
    assert trainer.metrics["loss"] == pytest.approx(2 * trainer.metrics["train/ce"])


# --- resume -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["two inputs", "sample weight", "dict batch", "loss parts"])
def test_each_new_path_resumes_exactly_mid_epoch(tmp_path: Path, kind: str) -> None:
    x, y = tiny_data(40)
    b = torch.randn(40, 4, generator=torch.Generator().manual_seed(2))

    def build(callbacks: list[Any], **options: Any) -> hookline.Trainer:
        torch.manual_seed(5)
        model: nn.Module
        if kind == "two inputs":
            model, data, extra = TwoInputs(), ((x, b), y), {"loss": "cross_entropy"}
        elif kind == "sample weight":
            model, data, extra = tiny_model(), (x, y, b[:, 0].abs()), {"loss": "cross_entropy"}
        elif kind == "dict batch":
            model, data, extra = OwnLoss(), {"features": x, "scale": b[:, 0], "labels": y}, {}
        else:
            model, data, extra = TinyVAE(), (x,), {}
        return hookline.Trainer(model, optimizer=sgd, train_data=data, val_data=data,
                                batch_size=8, epochs=3, seed=4, verbose=0, device="cpu",
                                callbacks=callbacks, **extra, **options)
    expected = build([])
    expected.fit()
    first = build([OnExceptionCheckpoint(tmp_path, rng="all"),
                   crash_at("on_train_batch_end", 7)])
    with pytest.raises(Crash):
        first.fit()
    resumed = build([], resume=tmp_path / "on_exception.ckpt")
    resumed.fit()
    assert_same_weights(resumed.model, expected.model)
    assert resumed.metrics == expected.metrics
    assert resumed.loss_names == expected.loss_names


def test_any_nested_batch_moves_to_the_device_whole() -> None:
    from hookline.data import move_to
    batch = ({"a": torch.ones(2), "b": [torch.ones(2), (torch.ones(1),)]}, torch.zeros(2), 3)
    moved = move_to(batch, torch.device("meta"))
    inputs, target, plain = moved
    assert [t.device.type for t in (inputs["a"], inputs["b"][0], inputs["b"][1][0], target)] \
        == ["meta"] * 4
    assert plain == 3 and isinstance(inputs["b"], list) and isinstance(inputs["b"][1], tuple)
