"""summary(): layers, output shapes and parameter counts, without disturbing a run."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import hookline
from hookline.callbacks import ModelSummary
from hookline.testing import tiny_data, tiny_model


def frozen_first_layer():
    model = tiny_model()
    for parameter in model[0].parameters():
        parameter.requires_grad_(False)
    return model


def test_model_summary_lists_layers_shapes_and_counts():
    x, _ = tiny_data(samples=8)
    printed = []
    summary = hookline.Model(frozen_first_layer(), loss="cross_entropy").summary(
        x[:2], print_fn=printed.append)
    assert [(row.name, row.type, row.output_shape, row.params) for row in summary.layers] == [
        ("0", "Linear", "[2, 16]", 8 * 16 + 16), ("1", "ReLU", "[2, 16]", 0),
        ("2", "Linear", "[2, 3]", 16 * 3 + 3)]
    assert (summary.total_params, summary.trainable_params, summary.non_trainable_params) == (
        195, 51, 144)
    assert printed == [str(summary)]
    assert "Trainable params: 51" in printed[0] and "Non-trainable params: 144" in printed[0]
    assert "| 2    | Linear | [2, 3]" in printed[0]


def test_without_an_example_the_shapes_are_question_marks():
    summary = hookline.Model(tiny_model(), loss="cross_entropy").summary(print_fn=None)
    assert {row.output_shape for row in summary.layers} == {"?"}
    assert "pass an example input" in str(summary)
    assert summary.total_params == 195


def test_after_fit_the_summary_uses_the_training_data():
    x, y = tiny_data(samples=8)
    model = hookline.Model(tiny_model(), loss="cross_entropy", device="cpu")
    model.fit(x, y, epochs=1, verbose=0)
    assert model.summary(print_fn=None).layers[-1].output_shape == "[1, 3]"


def test_nested_modules_by_depth_and_a_failing_forward():
    model = nn.Sequential(nn.Sequential(nn.Linear(8, 4), nn.Tanh()), nn.Linear(4, 2))
    summary = hookline.Model(model, loss="mse").summary(torch.zeros(1, 8), max_depth=2,
                                                        print_fn=None)
    assert [(row.name, row.output_shape) for row in summary.layers] == [
        ("0", "[1, 4]"), ("0.0", "[1, 4]"), ("0.1", "[1, 4]"), ("1", "[1, 2]")]
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        hookline.Model(model, loss="mse").summary(torch.zeros(1, 5), print_fn=None)
    with pytest.raises(ValueError, match="max_depth must be an integer >= 1"):
        hookline.Model(model, loss="mse").summary(max_depth=0)


def test_summary_restores_modes_and_random_generators():
    model = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.5))
    model.train()
    before = torch.get_rng_state()
    hookline.Model(model, loss="mse").summary(torch.zeros(1, 8), print_fn=None)
    assert model.training and model[1].training
    assert torch.equal(torch.get_rng_state(), before)


def train_weights(callbacks):
    x, y = tiny_data(samples=32)
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)
    trainer = hookline.Trainer(nn.Sequential(tiny_model(), nn.Dropout(0.3)),
                               loss="cross_entropy", train_data=loader, epochs=2, seed=3,
                               verbose=0, device="cpu", callbacks=callbacks)
    trainer.fit()
    return [p.detach().clone() for p in trainer.model.parameters()]


def test_a_summary_at_fit_start_reads_the_first_batch_without_changing_the_run():
    stream = io.StringIO()
    plain = train_weights([])
    summarised = train_weights([ModelSummary(file=stream)])
    assert "| 0    | Sequential | [1, 3]" in stream.getvalue()  # it did run a forward pass
    for before, after in zip(plain, summarised):
        assert torch.equal(before, after)


def test_trainer_summary_leaves_a_one_shot_iterator_alone():
    x, y = tiny_data(samples=8)
    batches = iter([(x[:4], y[:4]), (x[4:], y[4:])])
    trainer = hookline.Trainer(tiny_model(), loss="cross_entropy", train_data=batches,
                               verbose=0, device="cpu")
    summary = trainer.summary()
    assert "one-shot iterator" in summary.note and summary.layers[0].output_shape == "?"
    assert len(list(batches)) == 2  # nothing consumed


def test_verbose_2_prints_the_summary_at_fit_start(capsys):
    x, y = tiny_data(samples=8)
    hookline.Trainer(tiny_model(), loss="cross_entropy", train_data=(x, y), verbose=2,
                     device="cpu").fit()
    out = capsys.readouterr().out
    assert out.index("Model: Sequential (input [1, 8])") < out.index("Epoch 1/1")
    assert "Total params: 195" in out
    hookline.Trainer(tiny_model(), loss="cross_entropy", train_data=(x, y), verbose=1,
                     device="cpu").fit()
    assert "Total params" not in capsys.readouterr().out
    model = hookline.Model(tiny_model(), loss="cross_entropy", device="cpu")
    model.fit(x, y, epochs=1, verbose=2)
    assert "Total params: 195" in capsys.readouterr().out


def test_model_summary_callback_options():
    stream = io.StringIO()
    x, y = tiny_data(samples=8)
    hookline.Trainer(tiny_model(), loss="cross_entropy", train_data=(x, y), verbose=0,
                     device="cpu", callbacks=[ModelSummary(file=stream)]).fit()
    assert "| 0    | Linear | [1, 16]" in stream.getvalue()
    with pytest.raises(ValueError, match=r"ModelSummary\(max_depth=0\) is not allowed"):
        ModelSummary(max_depth=0)


def test_summary_keeps_its_shapes_after_evaluate_and_predict() -> None:
    import hookline
    from hookline.testing import tiny_data, tiny_model
    x, y = tiny_data(16)
    model = hookline.Model(tiny_model(), loss="cross_entropy", device="cpu")
    model.fit(x, y, epochs=1, verbose=0)
    model.evaluate(x, y, verbose=0)
    model.predict(x)
    text = str(model.summary(print_fn=None))
    assert "[1, 16]" in text and "[1, 3]" in text and "?" not in text  # shapes, not "?"
