"""The built-ins order themselves correctly by default, proven with real fits."""

from __future__ import annotations

import importlib
import math
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import hookline
import hookline.callbacks
from hookline import LambdaCallback
from hookline.callbacks import (
    EarlyStopping,
    LearningRateMonitor,
    LearningRateScheduler,
    LRSchedulerCallback,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TerminateOnNaN,
)
from hookline.checkpoint import load_checkpoint
from hookline.testing import ScriptedMetrics, tiny_data, tiny_model

DOCS = Path(__file__).resolve().parents[1] / "docs" / "callbacks.md"



def fit(callbacks, epochs, *, loss="cross_entropy", samples=16):
    x, y = tiny_data(samples=samples)
    trainer = hookline.Trainer(tiny_model(), loss=loss, train_data=(x, y), batch_size=16,
                               epochs=epochs, callbacks=callbacks, metrics=[], verbose=0,
                               device="cpu", seed=0)
    trainer.fit()
    return trainer


def test_lr_monitor_values_are_final_before_the_readers(tmp_path):
    """ModelCheckpoint's template, EarlyStopping's monitor and History all see the lr."""
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="m-{epoch}-{lr:.0e}")
    stopper = EarlyStopping(monitor="lr", mode="min", patience=0, min_delta=0)
    trainer = fit([checkpoint, stopper, LearningRateMonitor(),  # registered last on purpose
                   LearningRateScheduler(lambda epoch, lr: 1e-2)],
                  epochs=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-0-1e-02.pt", "m-1-1e-02.pt"]
    assert stopper.stopped_epoch == 1  # a flat lr is "no improvement" from epoch 1
    history = trainer.callbacks.find(hookline.History)[0]
    assert history.history["lr"] == [1e-2, 1e-2]


def test_checkpoint_of_the_stopping_epoch_is_written(tmp_path):
    stopper = EarlyStopping(patience=1)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="m-{epoch}", save_last=True)
    trainer = fit([checkpoint, stopper, ScriptedMetrics({"val_loss": [3, 2, 4, 5, 6]})],
                  epochs=5)  # stops at 2
    assert stopper.stopped_epoch == 2 and trainer.epoch == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "m-0.pt", "m-1.pt",
                                                          "m-2.pt"]
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["run"]["epoch"] == 2 and last["run"]["stop"]
    # EarlyStopping (order 30) decided before ModelCheckpoint (order 150) saved, so the
    # checkpoint holds its final counters: a resume from it does not repeat the decision
    early = next(v for k, v in last["callbacks"].items() if k.startswith("EarlyStopping"))
    assert early["stopped_epoch"] == 2 and early["wait"] == 1
    # History (order 90) recorded the stopping epoch before the save
    assert last["callbacks"]["History"]["epoch"] == [0, 1, 2]


def test_checkpoint_holds_the_reduced_lr_and_plateau_counters(tmp_path):
    plateau = ReduceLROnPlateau(factor=0.5, patience=1)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="m-{epoch}")
    fit([checkpoint, plateau, ScriptedMetrics({"val_loss": [1.0, 1.0]})], epochs=2)
    saved = load_checkpoint(tmp_path / "m-1.pt")
    assert saved["optimizer"]["param_groups"][0]["lr"] == 0.0005
    state = next(v for k, v in saved["callbacks"].items() if k.startswith("ReduceLROnPlateau"))
    assert state["num_reductions"] == 1


def test_two_stoppers_both_take_effect_and_the_first_reason_is_kept():
    class PoisonAtEpoch:
        def __init__(self, epoch):
            self.epoch, self.trainer = epoch, None

        def __call__(self, preds, targets):
            loss = nn.functional.cross_entropy(preds, targets)
            return loss * math.nan if self.trainer.epoch == self.epoch else loss

    poison = PoisonAtEpoch(2)
    grab = LambdaCallback(on_train_start=lambda t: setattr(poison, "trainer", t))
    terminate = TerminateOnNaN()
    stopper = EarlyStopping(patience=1)
    trainer = fit([grab, stopper, terminate, ScriptedMetrics({"val_loss": [3, 2, 2.5, 2.5]})],
                  epochs=4, loss=poison)
    assert trainer.epoch == 2
    assert terminate.stopped_epoch == 2 and stopper.stopped_epoch == 2
    assert stopper.stopping_reason.startswith("val_loss did not improve")
    assert trainer.stop_reason.startswith("TerminateOnNaN: loss is nan at epoch 2")


def test_two_early_stoppers_on_one_epoch_keep_the_first_registered_reason():
    by_loss = EarlyStopping(patience=1)
    by_acc = EarlyStopping(monitor="val_accuracy", patience=1)
    trainer = fit([by_acc, by_loss, ScriptedMetrics({"val_loss": [1, 2, 3],
                                                     "val_accuracy": [0.5, 0.4, 0.3]})],
                  epochs=3)
    assert by_loss.stopped_epoch == by_acc.stopped_epoch == 1
    assert trainer.stop_reason == f"EarlyStopping: {by_acc.stopping_reason}"
    assert "val_accuracy" in trainer.stop_reason


def test_resolved_order_at_the_epochs_end():
    trainer = hookline.Trainer(
        tiny_model(), loss="cross_entropy", train_data=tiny_data(samples=16), verbose=1,
        callbacks=[ModelCheckpoint(dirpath="unused"), EarlyStopping(),
                   ReduceLROnPlateau(), LearningRateMonitor(),
                   LRSchedulerCallback(lambda opt: torch.optim.lr_scheduler.StepLR(opt, 1)),
                   TerminateOnNaN(), LearningRateScheduler(lambda e, lr: lr)])
    lines = dict(line.split(": ", 1) for line in trainer.describe_callbacks().splitlines()
                 if ": " in line)
    fit_end = re.findall(r"(\w+)\(order=", lines["on_fit_epoch_end"])
    assert fit_end == ["ReduceLROnPlateau", "LRSchedulerCallback", "EarlyStopping",
                       "History", "ProgressBar", "ModelCheckpoint"]
    epoch_end = re.findall(r"(\w+)\(order=", lines["on_train_epoch_end"])
    # the producers of learning_rate and lr, before every reader
    assert epoch_end[:2] == ["LearningRateScheduler", "LearningRateMonitor"]
    assert re.findall(r"(\w+)\(order=", lines["on_train_epoch_start"])[0] == \
        "LearningRateScheduler"


def documented_orders():
    text = DOCS.read_text()
    section = text.split("## Order of the built-ins", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| (-?\d+) \|", section, flags=re.MULTILINE)
    assert rows, "docs/callbacks.md lost its order table"
    return {name: int(order) for name, order in rows}


@pytest.mark.parametrize("name", ["TerminateOnNaN", "LearningRateScheduler",
                                  "LearningRateMonitor", "ReduceLROnPlateau",
                                  "LRSchedulerCallback", "EarlyStopping", "ModelCheckpoint",
                                  "History", "ProgressBar"])
def test_docs_order_table_matches_the_code(name):
    assert documented_orders()[name] == getattr(hookline.callbacks, name).order


def find_built_in(name):
    """A built-in by class name: exported, or in its own snake_case module."""
    import hookline.loggers
    found = getattr(hookline.callbacks, name, None)
    if found is None and name in hookline.loggers.__all__:
        found = getattr(hookline.loggers, name)
    if found is None:
        module = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
        try:
            found = getattr(importlib.import_module(f"hookline.callbacks.{module}"), name, None)
        except ImportError:
            found = None
    return found


def test_docs_order_table_names_only_real_callbacks():
    for name, order in documented_orders().items():
        cls = find_built_in(name)
        assert cls is not None, f"docs/callbacks.md lists {name}, which does not exist"
        assert cls.order == order, f"{name}: docs say {order}, code says {cls.order}"
