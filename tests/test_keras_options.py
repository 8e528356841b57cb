"""The Keras door takes numbers given as strings when unambiguous and names the option if not."""

from __future__ import annotations

import pytest

import hookline
from hookline.testing import tiny_data, tiny_model


def test_numbers_as_strings_are_converted():
    x, y = tiny_data(samples=16)
    model = hookline.Model(tiny_model(), optimizer="sgd", loss="cross_entropy", lr="5e-2",
                           device="cpu")
    assert model.lr == 0.05
    history = model.fit(x, y, epochs="3", batch_size="8", verbose="0", shuffle="false",
                        validation_split="0.25")
    assert history.epoch == [0, 1, 2]
    assert model._trainer.args.batch_size == 8 and model._trainer.args.shuffle is False
    assert len(model._trainer.validator.data) == 1  # 4 of 16 held out: one batch of 8
    assert model.optimizer.learning_rate == 0.05
    assert model.predict(x, batch_size="4").shape == (16, 3)
    assert isinstance(model.evaluate(x, y, batch_size="4", verbose="0"), float)  # the loss


@pytest.mark.parametrize("off", ["0", "No", "off"])
def test_keras_switch_strings_follow_the_trainers_rule(off):
    x, y = tiny_data(samples=8)
    model = hookline.Model(tiny_model(), loss="cross_entropy", device="cpu")
    model.fit(x, y, epochs=1, verbose=0, shuffle=off)
    assert model._trainer.args.shuffle is False


@pytest.mark.parametrize("name, example", [
    ("verbose", 1), ("epochs", 5), ("batch_size", 32), ("validation_split", 0.2),
    ("validation_freq", 1), ("steps_per_epoch", 100)])
def test_the_hint_for_a_word_given_as_a_number_is_a_valid_value(name, example):
    """verbose='loud' proposed verbose=5, itself refused: each option has its own example."""
    x, y = tiny_data(samples=8)
    model = hookline.Model(tiny_model(), loss="cross_entropy", device="cpu")
    with pytest.raises(ValueError, match=rf"Model.fit\({name}='loud'\): {name} must be a "
                                         rf"number and 'loud' is not one; pass e.g. "
                                         rf"{name}={example}\b"):
        model.fit(x, y, **{"epochs": 1, "verbose": 0, name: "loud"})
    model.fit(x, y, **{"epochs": 1, "verbose": 0, name: example})  # the proposed value: taken


def test_keras_verbose_auto_means_a_progress_bar():
    x, y = tiny_data(samples=8)
    model = hookline.Model(tiny_model(), loss="cross_entropy", device="cpu")
    model.fit(x, y, epochs=1, verbose="auto")
    assert model._trainer.args.verbose == 1


@pytest.mark.parametrize("call, message", [
    (lambda m, x, y: m.fit(x, y, epochs="2.5"),
     r"Model.fit\(epochs='2.5'\): epochs must be a whole number, got '2.5'; pass epochs=2"),
    (lambda m, x, y: m.fit(x, y, batch_size="thirty-two"),
     r"Model.fit\(batch_size='thirty-two'\): batch_size must be a number"),
    (lambda m, x, y: m.fit(x, y, shuffle="maybe"),
     (r"Model.fit\(shuffle='maybe'\): shuffle is a switch; pass True or False \(or a string: "
      r"'true'/'false', 'yes'/'no', 'on'/'off', '1'/'0'\)")),
    (lambda m, x, y: m.fit(x, y, validation_split="nan"),
     r"validation_split must be a finite number"),
    (lambda m, x, y: hookline.Model(tiny_model(), loss="mse", lr="fast"),
     r"Model\(lr='fast'\): lr must be a number and 'fast' is not one; pass e.g. lr=1e-3"),
    (lambda m, x, y: m.evaluate(x, y, verbose="loud"),
     r"Model.evaluate\(verbose='loud'\): verbose must be a number"),
])
def test_ambiguous_strings_are_rejected_naming_the_option(call, message):
    x, y = tiny_data(samples=8)
    model = hookline.Model(tiny_model(), loss="cross_entropy", device="cpu")
    with pytest.raises(ValueError, match=message):
        call(model, x, y)


@pytest.mark.parametrize(("option", "message"), [
    ({"acumulate": 2}, "did you mean accumulate"),
    ({"learning_rte": 0.1}, "did you mean learning_rate"),
    ({"lr": 0.1}, "set it on the Model"),
    ({"device": "cpu"}, "set it on the Model"),
])
def test_fit_names_a_misspelt_or_misplaced_option(option, message):
    x, y = tiny_data(samples=8)
    model = hookline.Model(tiny_model(), loss="cross_entropy", device="cpu")
    with pytest.raises(TypeError, match=message):
        model.fit(x, y, verbose=0, **option)


def test_evaluate_and_predict_name_a_misspelt_option():
    x, y = tiny_data(samples=8)
    model = hookline.Model(tiny_model(), loss="cross_entropy", device="cpu")
    with pytest.raises(TypeError, match="did you mean steps"):
        model.predict(x, stps=1)
    with pytest.raises(TypeError, match="did you mean return_dict"):
        model.evaluate(x, y, return_dit=True)


def test_keras_step_limits_validation_steps_and_steps():
    x, y = tiny_data(samples=64)
    model = hookline.Model(tiny_model(), loss="cross_entropy", device="cpu")
    counted = []
    model.add_callback("on_val_batch_end", lambda engine: counted.append(engine.batch_i))
    model.fit(x, y, epochs=1, verbose=0, batch_size=8, validation_split=0.5,
              validation_steps="2")
    assert counted == [0, 1]  # 32 held-out rows are 4 batches; two were drawn
    counted.clear()
    model.evaluate(x, y, batch_size=8, verbose=0, steps=3)
    assert counted == [0, 1, 2]
    assert model.predict(x, batch_size=8, steps=2).shape == (16, 3)


@pytest.mark.parametrize("steps", [0, -1, 1.5, True])
def test_evaluate_and_predict_refuse_steps_that_are_no_batch_count(steps):
    """evaluate(steps=0) blamed the data ('yielded no batches'), predict(steps=0) returned an
    empty array and steps=1.5 ran every batch: checked as fit's validation_steps is."""
    x, y = tiny_data(samples=16)
    model = hookline.Model(tiny_model(), loss="cross_entropy", device="cpu")
    limit = (rf"steps={steps!r}\): steps must be a number of batches \(an integer >= 1\) or "
             rf"a fraction in \(0, 1\], got {steps!r}")
    with pytest.raises(ValueError, match=rf"Model.evaluate\({limit}"):
        model.evaluate(x, y, verbose=0, steps=steps)
    with pytest.raises(ValueError, match=rf"Model.predict\({limit}"):
        model.predict(x, steps=steps)
    with pytest.raises(ValueError, match=r"limit_batches must be a number of batches"):
        hookline.Validator(tiny_model(), data=(x, y), loss="cross_entropy",
                           limit_batches=steps)
    with pytest.raises(ValueError, match=r"limit_batches must be a number of batches"):
        hookline.Predictor(tiny_model(), limit_batches=steps)


def test_validation_batch_size_batches_the_held_out_arrays():
    x, y = tiny_data(samples=64)
    model = hookline.Model(tiny_model(), loss="cross_entropy", device="cpu")
    sizes = []
    model.add_callback("on_val_batch_end", lambda engine: sizes.append(len(engine.batch[0])))
    model.fit(x, y, epochs=1, verbose=0, batch_size=8, validation_split=0.25,
              validation_batch_size=16)
    assert sizes == [16]  # 16 held-out rows in one batch of 16, not two of 8
    with pytest.raises(ValueError, match="validation_steps or limit_val_batches"):
        model.fit(x, y, verbose=0, validation_split=0.25, validation_steps=1,
                  limit_val_batches=1)
