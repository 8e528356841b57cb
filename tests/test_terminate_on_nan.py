"""TerminateOnNaN: a NaN or Inf loss stops training after that batch (or raises)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import hookline
from hookline import LambdaCallback
from hookline.callbacks import EarlyStopping, TerminateOnNaN
from hookline.callbacks.terminate_on_nan import NonFiniteLossError
from hookline.testing import RecordingCallback, tiny_data, tiny_model

BATCHES_PER_EPOCH = 4


class PoisonedLoss:
    """Cross-entropy that returns ``bad`` at one (epoch, batch); counts the batches computed."""

    def __init__(self, epoch, batch, bad=math.nan):
        self.at = epoch * BATCHES_PER_EPOCH + batch
        self.bad = bad
        self.calls = 0

    def __call__(self, preds, targets):
        loss = nn.functional.cross_entropy(preds, targets)
        self.calls += 1
        return loss * self.bad if self.calls - 1 == self.at else loss


def fit(callbacks, loss, epochs=3, model=None):
    x, y = tiny_data(samples=8 * BATCHES_PER_EPOCH)
    trainer = hookline.Trainer(model or tiny_model(), loss=loss, train_data=(x, y),
                               batch_size=8, epochs=epochs, callbacks=callbacks, metrics=[],
                               default_callbacks=False, verbose=0, device="cpu", seed=0,
                               shuffle=False)
    trainer.fit()
    return trainer


# (bad value, its epoch and batch, check_every, batches computed in all)
CASES = {
    "NaN stops after that batch": (math.nan, 1, 1, 1, BATCHES_PER_EPOCH + 2),
    "Inf stops after that batch": (math.inf, 0, 2, 1, 3),
    "-Inf too": (-math.inf, 2, 0, 1, 2 * BATCHES_PER_EPOCH + 1),
    "check_every=3 reads at the third batch": (math.nan, 1, 1, 3, BATCHES_PER_EPOCH + 3),
    "check_every=2 at the last batch": (math.nan, 0, 3, 2, 4),
    "check_every beyond the epoch reads at its end": (math.nan, 1, 0, 10,
                                                      2 * BATCHES_PER_EPOCH),
}


@pytest.mark.parametrize("bad, epoch, batch, check_every, computed", CASES.values(),
                         ids=CASES.keys())
def test_stops_after_the_bad_batch(bad, epoch, batch, check_every, computed):
    loss = PoisonedLoss(epoch, batch, bad)
    terminate = TerminateOnNaN(check_every=check_every)
    trainer = fit([terminate], loss)
    assert loss.calls == computed
    assert trainer.stop and trainer.epoch == epoch
    assert terminate.stopped_epoch == epoch and terminate.stopped_batch == batch
    value = "nan" if math.isnan(bad) else str(bad)
    assert trainer.stop_reason == f"TerminateOnNaN: loss is {value} at epoch {epoch}, " \
                                  f"batch {batch}"


def test_finite_losses_never_stop():
    loss = PoisonedLoss(epoch=99, batch=0)
    trainer = fit([TerminateOnNaN()], loss)
    assert loss.calls == 3 * BATCHES_PER_EPOCH and not trainer.stop
    assert trainer.stop_reason == ""


def test_without_the_callback_training_goes_on():
    loss = PoisonedLoss(epoch=0, batch=1)
    fit([], loss)
    assert loss.calls == 3 * BATCHES_PER_EPOCH


def test_the_epoch_still_ends_normally_after_a_stop():
    recorder = RecordingCallback(events=("on_train_epoch_end", "on_fit_epoch_end",
                                         "on_train_end"))
    fit([TerminateOnNaN(), recorder], PoisonedLoss(epoch=1, batch=0))
    assert recorder.events == ["on_train_epoch_end", "on_fit_epoch_end"] * 2 + ["on_train_end"]


def test_raise_error_raises_a_runtime_error_and_restores_best_weights():
    weights = {}
    keep = LambdaCallback(on_fit_epoch_end=lambda t: weights.__setitem__(
        t.epoch, {k: v.clone() for k, v in t.model.state_dict().items()}))
    model = tiny_model()
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at epoch 2, batch 1") as error:
        fit([scripted_val_loss(), keep, EarlyStopping(patience=5, restore_best_weights=True),
             TerminateOnNaN(raise_error=True)], PoisonedLoss(epoch=2, batch=1), model=model)
    assert isinstance(error.value, RuntimeError)  # what Keras raises
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, weights[1][name])


def scripted_val_loss():
    def val_loss(trainer):
        trainer.metrics["val_loss"] = [3.0, 1.0, 2.0][trainer.epoch]
    callback = LambdaCallback(on_fit_epoch_end=val_loss)
    callback.order = -100
    return callback


@pytest.mark.parametrize("restore", [False, True])
def test_graceful_stop_lets_early_stopping_restore_finite_weights(restore):
    model = tiny_model()
    trainer = fit([scripted_val_loss(), EarlyStopping(patience=5, restore_best_weights=restore),
                   TerminateOnNaN()], PoisonedLoss(epoch=2, batch=1), model=model)
    assert trainer.stop_reason.startswith("TerminateOnNaN")
    finite = all(torch.isfinite(t).all() for t in model.state_dict().values())
    assert finite == restore  # the NaN step poisoned the weights; the restore undid it


@pytest.mark.parametrize("check_every", [0, -1, 1.5, True])
def test_bad_check_every(check_every):
    with pytest.raises(ValueError, match=r"check_every=.*integer >= 1"):
        TerminateOnNaN(check_every=check_every)


def test_per_epoch_hooks_only_for_deferred_reads():
    assert set(TerminateOnNaN().hookline_handlers()) == {"on_train_start", "on_train_batch_end"}
    assert "on_train_epoch_end" in TerminateOnNaN(check_every=8).hookline_handlers()
