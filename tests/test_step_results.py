"""What custom steps return reaches every reader, once, in both phases; what cannot be read
is an error, never a quietly missing value."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import hookline
from hookline import Callback
from hookline.callbacks import History
from hookline.testing import tiny_data, tiny_model


def frozen() -> Any:
    return lambda parameters: torch.optim.SGD(parameters, lr=0.0)


def trainer(**options: Any) -> hookline.Trainer:
    x, y = tiny_data(samples=16)
    settings: dict[str, Any] = {"loss": "cross_entropy", "optimizer": frozen(),
                                "train_data": (x, y), "val_data": (x, y), "batch_size": 8,
                                "epochs": 1, "verbose": 0, "metrics": None}
    settings.update(options)
    return hookline.Trainer(tiny_model(), **settings)


def constant_loss(value: float) -> Any:
    def step(engine: Any, batch: Any) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(engine.model(x), y) * 0 + value
    return step


class DeclaresValidationStep(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = tiny_model()
        self.indices: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def validation_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self.indices.append(batch_idx)
        x, y = batch
        return nn.functional.cross_entropy(self(x), y) * 0 + 7.0


def test_validate_before_fit_runs_the_given_validation_step():
    assert trainer(validation_step=constant_loss(123.0)).validate() == {"loss": 123.0}


def test_validate_before_fit_runs_a_model_declared_validation_step():
    x, y = tiny_data(samples=16)
    model = DeclaresValidationStep()
    built = hookline.Trainer(model, loss="cross_entropy", train_data=(x, y), val_data=(x, y),
                             batch_size=8, verbose=0, metrics=None)
    assert built.validate() == {"loss": 7.0}


def test_a_model_validation_step_gets_the_validation_batch_index():
    x, y = tiny_data(samples=48)
    model = DeclaresValidationStep()
    hookline.Trainer(model, loss="cross_entropy", optimizer=frozen(), train_data=(x, y),
                     val_data=(x[:24], y[:24]), batch_size=8, epochs=2, verbose=0,
                     metrics=None).fit()
    assert model.indices == [0, 1, 2, 0, 1, 2]  # not the training batch's 5


class OwnLoss(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = tiny_model()

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.net(x)
        return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}


def test_sample_weights_on_a_model_with_its_own_loss_are_an_error():
    x, y = tiny_data(samples=16)
    batches = [{"x": x[:8], "labels": y[:8], "sample_weight": torch.zeros(8)}]
    built = hookline.Trainer(OwnLoss(), optimizer=frozen(), train_data=batches, epochs=1,
                             verbose=0, metrics=None)
    with pytest.raises(TypeError, match="sample weights, but there is no loss= and the model "
                                        "computes its own loss"):
        built.fit()
    validator = hookline.Validator(OwnLoss(), data=batches, metrics=None)
    with pytest.raises(TypeError, match="leave sample_weight out of the batch"):
        validator.validate()


def test_an_unreadable_custom_validation_result_is_an_error_not_a_missing_val_loss():
    def pair(engine: Any, batch: Any) -> Any:
        x, y = batch
        output = engine.model(x)
        return nn.functional.cross_entropy(output, y), output
    with pytest.raises(TypeError, match="the validation step returned tuple of 2"):
        trainer(validation_step=pair).fit()


def test_a_non_scalar_validation_loss_is_named():
    def per_sample(engine: Any, batch: Any) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(engine.model(x), y, reduction="none")
    with pytest.raises(ValueError, match=r"the validation step's loss must be a scalar tensor, "
                                         r"got \(8,\)"):
        trainer(validation_step=per_sample).fit()


def test_validation_loss_parts_that_change_between_batches_are_an_error():
    def changing(engine: Any, batch: Any) -> dict[str, torch.Tensor]:
        parts = {"a": torch.tensor(1.0)}
        if engine.validator.batch_i == 0:
            parts["b"] = torch.tensor(4.0)
        return parts
    with pytest.raises(ValueError, match=r"validation step returned loss parts \['a'\] after "
                                         r"\['a', 'b'\]"):
        trainer(validation_step=changing).fit()


def test_a_steps_sample_weight_entry_weighs_the_weighted_metrics():
    generator = torch.Generator().manual_seed(1)
    x, y = tiny_data(samples=12)
    weights = torch.rand(12, generator=generator)
    model = tiny_model()
    with torch.no_grad():
        hits = (model(x).argmax(1) == y).float()
    expected = float((hits * weights).sum() / weights.sum())

    def step(engine: Any, batch: Any) -> dict[str, torch.Tensor]:
        inputs, target, weight = batch
        output = engine.model(inputs)
        return {"loss": nn.functional.cross_entropy(output, target), "preds": output,
                "target": target, "sample_weight": weight}
    metrics = hookline.Trainer(
        model, loss="cross_entropy", optimizer=frozen(), training_step=step,
        validation_step=step, train_data=(x, y, weights), val_data=(x, y, weights),
        metrics=["accuracy"], weighted_metrics=["accuracy"], train_metrics=True,
        batch_size=12, epochs=1, verbose=0).fit()
    assert metrics["weighted_accuracy"] == pytest.approx(expected)
    assert metrics["val_weighted_accuracy"] == pytest.approx(expected)
    assert expected != pytest.approx(float(hits.mean()))  # the weights change it


def test_several_optimizers_keep_what_the_step_returns_besides_its_loss():
    x, y = tiny_data(samples=16)
    model = tiny_model()

    def step(engine: Any, batch: Any) -> dict[str, Any]:
        inputs, target = batch
        output = engine.model(inputs)
        return {"loss": nn.functional.cross_entropy(output, target), "preds": output,
                "target": target, "logs": {"my_stat": 42.0}}
    optimizers = {"first": torch.optim.SGD(model[0].parameters(), lr=0.0),
                  "second": torch.optim.SGD(model[2].parameters(), lr=0.0)}
    metrics = hookline.Trainer(model, loss="cross_entropy", optimizer=optimizers,
                               training_step=step, train_data=(x, y), batch_size=8, epochs=1,
                               verbose=0, metrics=["accuracy"], train_metrics=True).fit()
    assert metrics["my_stat"] == 42.0
    with torch.no_grad():
        assert metrics["accuracy"] == pytest.approx(float((model(x).argmax(1) == y).float()
                                                          .mean()))


def test_a_validation_steps_logs_are_logged_with_the_val_prefix():
    def step(engine: Any, batch: Any) -> dict[str, Any]:
        x, y = batch
        return {"loss": nn.functional.cross_entropy(engine.model(x), y),
                "logs": {"my_stat": 7.0}}
    built = trainer(validation_step=step)
    assert built.fit()["val_my_stat"] == 7.0
    assert built.validate()["my_stat"] == 7.0


class CountForwards(Callback):
    def __init__(self) -> None:
        self.count = 0

    def on_after_forward(self, trainer: Any) -> None:
        self.count += 1


def test_on_after_forward_fires_once_when_a_custom_step_wraps_the_default_one():
    counter = CountForwards()
    trainer(training_step=lambda engine, batch: hookline.Trainer.training_step(engine, batch),
            callbacks=[counter], val_data=None).fit()
    assert counter.count == 2  # two batches


def test_a_custom_step_that_skips_the_default_still_fires_on_after_forward():
    counter = CountForwards()
    trainer(training_step=constant_loss(1.0), callbacks=[counter], val_data=None).fit()
    assert counter.count == 2


def test_each_fit_has_its_own_history():
    history = History()
    built = trainer(epochs=2, callbacks=[history])
    built.fit()
    built.fit()
    assert history.epoch == [0, 1]
    assert len(history.history["loss"]) == 2


def test_step_extras_hold_only_the_latest_steps_entries():
    seen: list[list[str]] = []

    def step(engine: Any, batch: Any) -> Any:
        x, y = batch
        loss = nn.functional.cross_entropy(engine.model(x), y)
        return {"loss": loss, "embedding": x} if engine.batch_i == 0 else loss

    class Record(Callback):
        def on_train_batch_end(self, trainer: Any) -> None:
            seen.append(sorted(trainer.step_extras))
    trainer(training_step=step, callbacks=[Record()], val_data=None).fit()
    assert seen == [["embedding"], []]


def test_accumulate_with_a_manual_step_is_an_error():
    with pytest.raises(ValueError, match="accumulate=4 needs automatic_optimization=True"):
        trainer(training_step=constant_loss(1.0), automatic_optimization=False, accumulate=4)


def test_manual_optimization_without_a_step_of_ones_own_is_refused_when_built():
    # the default step computes the loss and nothing more: no backward, no optimizer step
    with pytest.raises(ValueError, match=r"automatic_optimization=False needs a training "
                                         r"step of your own.*Pass training_step=fn"):
        trainer(automatic_optimization=False)
    trainer(automatic_optimization=False, training_step=constant_loss(1.0))  # a step: fine


@pytest.mark.parametrize("automatic, advice", [
    (False, r"with automatic_optimization=False the step still returns the loss.*'return loss'"),
    (True, r"return its loss .* for the engine's backward.*filter it from the data"),
])
def test_a_training_step_returning_none_is_told_to_return_its_loss(automatic, advice):
    def step(engine: Any, batch: Any) -> None:
        inputs, target = batch
        loss = nn.functional.cross_entropy(engine.model(inputs), target)
        if not automatic:  # Lightning's manual step, which may end without a return
            engine.backward(loss)
            engine.step_optimizer()

    fit = trainer(training_step=step, automatic_optimization=automatic)
    with pytest.raises(TypeError, match=r"the training step returned None: " + advice):
        fit.fit()


def test_a_custom_validation_steps_loss_weighs_each_batch_by_its_size():
    x, y = tiny_data(samples=10)  # batches of 4, 4 and 2
    model = tiny_model()

    def only_loss(engine: Any, batch: Any) -> torch.Tensor:
        inputs, target = batch
        return nn.functional.cross_entropy(engine.model(inputs), target)
    built = hookline.Trainer(model, loss="cross_entropy", val_data=(x, y), train_data=(x, y),
                             validation_step=only_loss, batch_size=4, verbose=0, metrics=None)
    with torch.no_grad():
        true_mean = float(nn.functional.cross_entropy(model(x), y))
    assert built.validate()["loss"] == pytest.approx(true_mean, rel=1e-6)
