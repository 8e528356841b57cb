"""benchmarks/loop_anatomy.py: each contender trains the batches it is timed on, and the
trainer-based ones measure the trainer's real per-batch path (no hook left on the model).
Timings are not checked (CI machines are noisy)."""

from __future__ import annotations

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


def test_every_contender_trains_the_model_as_the_raw_loop_does(anatomy) -> None:
    batches = anatomy.make_batches(6)
    weights = {}
    for contender in anatomy.CONTENDERS:
        torch.manual_seed(0)  # the same initial weights for every contender
        fit = anatomy.build(contender, batches)
        assert fit() == 6
        weights[contender] = fit.model.weight.detach().clone()
    reference = weights["raw"]
    for contender, weight in weights.items():  # the same six SGD steps, whatever the loop
        assert torch.allclose(weight, reference, atol=1e-6), contender


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


def test_quick_run_prints_a_row_per_contender(anatomy) -> None:
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "loop_anatomy.py"),
                           "--quick"], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    rows = {line.split("|")[1].strip(): line for line in done.stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| contender")}
    assert set(rows) == set(anatomy.CONTENDERS)
    assert rows["raw"].split("|")[3].strip() == "1.0000 [1.0000, 1.0000]"
    for line in rows.values():
        assert float(line.split("|")[2]) > 0
