"""benchmarks/loop_anatomy.py: each contender trains the batches it is timed on, and the
trainer-based ones measure the trainer's real per-batch path (no hook left on the model).
Timings are not checked (CI machines are noisy)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def anatomy(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import loop_anatomy
    return loop_anatomy


@pytest.mark.parametrize("model", ["linear", "tiny-128"])
def test_every_contender_trains_the_model_as_the_raw_loop_does(anatomy, model) -> None:
    setup = anatomy.SETUPS[model]
    batches = anatomy.make_batches(6, setup=setup)
    assert [len(x) for x, _ in batches] == [setup.batch_size] * 6
    weights = {}
    for contender in anatomy.CONTENDERS:
        torch.manual_seed(0)  # the same initial weights for every contender
        fit = anatomy.build(contender, batches, setup)
        assert fit() == 6
        weights[contender] = torch.nn.utils.parameters_to_vector(fit.model.parameters()).detach()
    reference = weights["raw"]
    untrained = torch.nn.utils.parameters_to_vector(setup.make_model().parameters()).detach()
    assert not torch.allclose(reference, untrained)  # six steps moved the weights
    for contender, weight in weights.items():  # the same six SGD steps, whatever the loop
        assert torch.allclose(weight, reference, atol=1e-6), contender


def test_the_mlp_batches_are_the_headline_workloads_data(anatomy) -> None:
    """``--model tiny-128`` trains what engine_cost.py times: the MLP of that workload, on
    samples of ``workloads.make_data``, with cross-entropy on class labels."""
    import workloads
    setup = anatomy.SETUPS["tiny-128"]
    x, y = setup.make_inputs(256, 0)
    expected_x, expected_y, _, _ = workloads.make_data(
        dataclasses.replace(workloads.WORKLOADS["tiny-128"], steps_per_epoch=2, val_batches=0))
    assert torch.equal(x, expected_x) and torch.equal(y, expected_y)
    assert y.dtype == torch.int64
    assert [layer.in_features for layer in setup.make_model() if hasattr(layer, "in_features")] \
        == [32, 64]
    assert setup.loss_fn is torch.nn.functional.cross_entropy


def test_the_recording_control_reads_every_step_loss(anatomy, monkeypatch) -> None:
    reads = []
    original = torch.Tensor.item
    monkeypatch.setattr(torch.Tensor, "item", lambda self: reads.append(1) or original(self))
    fit = anatomy.build(anatomy.RECORDING, anatomy.make_batches(5))
    assert fit() == 5 and len(reads) == 5
    reads.clear()
    anatomy.build("raw", anatomy.make_batches(5))()
    assert reads == []  # the plain raw loop reads no value


@pytest.mark.parametrize("contender", ["raw loop as the trainer's epoch",
                                       "hookline's step in a bare loop", "minimal engine loop"])
def test_a_replaced_epoch_leaves_no_hook_on_the_model(anatomy, contender) -> None:
    """The first call's signature hook removes itself only in the training phase: an epoch
    that forgot to set it would time every forward through torch's hook path."""
    fit = anatomy.build(contender, anatomy.make_batches(3))
    trainer = fit.trainer
    fit()
    assert not trainer.model._forward_pre_hooks
    assert trainer.input_signature is not None  # recorded from the first batch, then removed


def test_the_minimal_loop_keeps_what_callbacks_read(anatomy) -> None:
    fit = anatomy.build("minimal engine loop", anatomy.make_batches(4))
    trainer = fit.trainer
    fit()
    assert trainer.batch_i == 3 and trainer.step == 4
    assert len(trainer.epoch_losses) == 4 and all(type(v) is float for v in trainer.epoch_losses)
    assert trainer.metrics["loss"] == pytest.approx(sum(trainer.epoch_losses) / 4)


@pytest.mark.parametrize("model", ["linear", "tiny"])
def test_quick_run_prints_a_row_per_contender(anatomy, model) -> None:
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "loop_anatomy.py"),
                           "--quick", "--model", model], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(anatomy.SETUPS[model].describe)
    rows = {line.split("|")[1].strip(): line for line in done.stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| contender")}
    assert set(rows) == set(anatomy.CONTENDERS)
    assert rows["raw"].split("|")[3].strip() == "1.0000 [1.0000, 1.0000]"
    for line in rows.values():
        assert float(line.split("|")[2]) > 0


def test_an_unknown_model_is_refused_with_the_choices(anatomy) -> None:
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "loop_anatomy.py"),
                           "--quick", "--model", "tiny-64"], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 2
    assert "tiny-64" in done.stderr and "tiny-128" in done.stderr
