"""No per-step host-device synchronisation with the default callbacks.

On CPU this is shown by counting the calls that copy a tensor's value to Python (``.item()``,
``.tolist()``, ``float()``, ``int()``, ``bool()``): their number must not grow with the number of
steps. On a GPU, ``benchmarks/cuda_check.py`` runs every training step under
``torch.cuda.set_sync_debug_mode("error")`` (see BENCHMARKS.md).

A CPU run keeps each step's loss as a float (``loss.item()``: a CPU tensor is read without
waiting for anything; hookline/step_losses.py), so the counts here are taken with the CPU
recording as an accelerator does (``FLOAT_DEVICES`` emptied): the path a GPU run takes.
"""

from __future__ import annotations

import pytest
import torch

import hookline
from hookline import step_losses
from hookline.testing import tiny_data, tiny_model

READS = ("item", "tolist", "__float__", "__int__", "__bool__")


@pytest.fixture
def count_reads(monkeypatch):
    monkeypatch.setattr(step_losses, "FLOAT_DEVICES", frozenset())  # as on an accelerator
    counts = {"n": 0}
    for name in READS:
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, **kwargs):
            counts["n"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    return counts


def reads_for(samples: int, count_reads, **options) -> int:
    x, y = tiny_data(samples=samples)
    # SGD: torch's CPU Adam reads its own step counter with .item() (a CPU tensor, no device
    # sync); the count here is hookline's alone.
    trainer = hookline.Trainer(tiny_model(), optimizer="sgd", loss="cross_entropy",
                               train_data=(x, y), val_data=(x[:8], y[:8]), batch_size=4,
                               epochs=2, device="cpu", seed=0, **options)
    before = count_reads["n"]
    trainer.fit()
    return count_reads["n"] - before


@pytest.mark.parametrize("verbose", [0, 1, 2])
def test_value_reads_do_not_grow_with_steps(count_reads, verbose, capsys):
    few = reads_for(12, count_reads, verbose=verbose)  # 3 steps per epoch
    many = reads_for(120, count_reads, verbose=verbose)  # 30 steps per epoch
    assert many == few
    assert few <= 2 * 4  # a handful per epoch: the epoch mean and validation metrics


def test_a_callback_that_reads_the_loss_is_what_syncs(count_reads):
    x, y = tiny_data(samples=40)
    trainer = hookline.Trainer(tiny_model(), loss="cross_entropy", train_data=(x, y),
                               batch_size=4, device="cpu", verbose=0)
    trainer.add_callback("on_train_batch_end", lambda t: t.loss.item())
    before = count_reads["n"]
    trainer.fit()
    assert count_reads["n"] - before >= 10  # one per step, asked for by the callback


def test_loss_parts_stay_on_the_device_until_the_epoch_ends(count_reads):
    def step(trainer, batch):
        x, y = batch
        logits = trainer.model(x)
        return {"ce": torch.nn.functional.cross_entropy(logits, y),
                "l2": 1e-3 * logits.pow(2).mean(), "preds": logits, "target": y}

    def reads(samples):
        x, y = tiny_data(samples=samples)
        trainer = hookline.Trainer(tiny_model(), optimizer="sgd", training_step=step,
                                   train_data=(x, y), val_data=(x[:8], y[:8]), batch_size=4,
                                   epochs=2, device="cpu", seed=0, verbose=2,
                                   train_metrics=True, loss="cross_entropy")
        before = count_reads["n"]
        trainer.fit()
        assert set(trainer.metrics) >= {"train/ce", "train/l2", "val_loss"}
        return count_reads["n"] - before
    assert reads(120) == reads(12)  # 30 steps per epoch read as much as 3
