"""The engine owns its run state: one typed record (hookline.run_state), in and out only through
Trainer.state_dict() / load_state_dict(), every field put back, a missing or renamed field an
error naming it."""

from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

import hookline
from hookline.checkpoint import CorruptCheckpointError, load_checkpoint, write_checkpoint
from hookline.run_state import Phase, RunState
from hookline.testing import tiny_data, tiny_model


def make(callbacks: list[Any] = (), **options: Any) -> hookline.Trainer:
    x, y = tiny_data(samples=48)
    settings = dict(optimizer="adam", lr=0.01, loss="cross_entropy", metrics=["accuracy"],
                    train_data=(x, y), val_data=(x, y), batch_size=8, epochs=3, seed=3,
                    accumulate=2, train_metrics=True, device="cpu", verbose=0)
    settings.update(options)
    return hookline.Trainer(tiny_model(), callbacks=list(callbacks), **settings)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and \
            a.shape == b.shape and torch.equal(a.cpu(), b.cpu())
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[key], b[key]) for key in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def test_the_phase_is_an_enum_equal_to_its_string() -> None:
    seen: list[Any] = []
    trainer = make([hookline.LambdaCallback(on_train_batch_end=lambda t: seen.append(t.phase),
                                            on_fit_epoch_end=lambda t: seen.append(t.phase))],
                   epochs=1)
    assert trainer.phase is Phase.IDLE and trainer.phase == "idle"
    trainer.fit()
    assert seen[0] is Phase.TRAIN and seen[0] == "train" and str(seen[0]) == "train"
    assert seen[-1] is Phase.EPOCH_DONE and seen[-1] == "epoch_done"
    assert trainer.phase == "done"


def test_every_field_of_the_run_state_is_put_back_mid_epoch(tmp_path: Path) -> None:
    """A state taken after batch 3 of epoch 1 (an odd batch with accumulate=2: gradients are
    pending) equals, field by field, the state of a fresh trainer loaded from it when its next
    batch starts. A field the engine records but does not put back fails here."""
    saved: dict[str, Any] = {}

    def take(trainer: hookline.Trainer) -> None:
        if trainer.epoch == 1 and len(trainer.epoch_losses) == 3 and not saved:
            saved["payload"] = trainer.state_dict()
            saved["state"] = RunState.of(trainer)

    make([hookline.LambdaCallback(on_train_batch_end=take)]).fit()
    before = saved["state"]
    assert before.grads and before.train_metrics and before.metrics  # the hard parts present

    after: list[RunState] = []
    resumed = make([hookline.LambdaCallback(
        on_train_batch_start=lambda t: after.append(RunState.of(t)) if not after else None)],
        resume=saved["payload"])
    resumed.fit()
    differing = [item.name for item in dataclasses.fields(RunState)
                 if not same(getattr(before, item.name), getattr(after[0], item.name))]
    assert differing == []
    assert resumed.resumed


def test_state_dict_round_trips_through_a_file(tmp_path: Path) -> None:
    trainer = make(epochs=1)
    trainer.fit()
    path = write_checkpoint(trainer.state_dict(), tmp_path / "a.ckpt")
    run = RunState.from_dict(load_checkpoint(path)["run"], path)
    assert run == dataclasses.replace(run)  # a plain record
    assert run.phase is Phase.EPOCH_DONE and run.step == 3 and run.run_id == trainer.run_id
    assert run.args.seed == 3 and run.args.accumulate == 2 and run.args.world_size == 1


@pytest.mark.parametrize("change, message", [
    (lambda run: run.pop("step"), r"run state lacks step"),
    (lambda run: run.__setitem__("steps", run.pop("step")),
     r"lacks step and has fields this version does not know \(steps\)"),
    (lambda run: run["args"].pop("seed"), r"run args lacks seed"),
    (lambda run: run.__setitem__("phase", "warming_up"), r"unknown phase 'warming_up'"),
])
def test_a_missing_or_renamed_field_is_an_error_naming_it(change: Any, message: str) -> None:
    trainer = make(epochs=1)
    trainer.fit()
    run = trainer.state_dict()["run"]
    change(run)
    with pytest.raises(CorruptCheckpointError, match=message):
        RunState.from_dict(run, "x.ckpt")


def test_resume_passes_over_a_file_with_a_renamed_field(tmp_path: Path) -> None:
    first = make(epochs=1)
    first.fit()
    good = write_checkpoint(first.state_dict(), tmp_path / "good.ckpt")
    time.sleep(0.01)
    second = make(epochs=2)
    second.fit()
    payload = second.state_dict()
    payload["run"]["batches"] = payload["run"].pop("batches_done")
    write_checkpoint(payload, tmp_path / "newer.ckpt")
    resumed = make(epochs=3, resume=tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed.fit()
    assert resumed.resumed_from == good
    assert any("lacks batches_done" in str(w.message) for w in caught)


def test_a_renamed_trainer_attribute_is_an_error_not_a_default() -> None:
    trainer = make(epochs=1)
    trainer.fit()
    del trainer.skip_rest_of_epoch
    with pytest.raises(AttributeError, match="skip_rest_of_epoch"):
        trainer.state_dict()
