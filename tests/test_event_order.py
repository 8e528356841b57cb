"""The exact event sequence of fit, validate, predict and export, against the documented order."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import hookline
from hookline.events import EVENTS, FIT_ORDER, catalogue_markdown
from hookline.testing import RecordingCallback, tiny_data, tiny_model

STEP = ["optimizer_step", "on_params_update", "on_before_zero_grad"]
TRAIN_BATCH = ["on_train_batch_start", "on_after_forward", "on_after_loss", "on_after_backward",
               *STEP, "on_train_batch_end"]
VAL = ["on_val_start", "on_val_batch_start", "on_val_batch_end", "on_val_batch_start",
       "on_val_batch_end", "on_val_end"]


def expected_fit(epochs: int, batches: int, saved: bool) -> list[str]:
    """The order docs/events.md documents (FIT_ORDER), spelled out for this run."""
    sequence = ["on_pretrain_routine_start", "on_pretrain_routine_end", "on_train_start"]
    for _ in range(epochs):
        sequence += ["on_train_epoch_start", *TRAIN_BATCH * batches, "on_train_epoch_end", *VAL]
        sequence += (["on_model_save"] if saved else []) + ["on_fit_epoch_end"]
    return sequence + ["on_train_end", "teardown"]


@pytest.fixture
def trainer_and_recorder(tmp_path: Path) -> tuple[hookline.Trainer, RecordingCallback]:
    x, y = tiny_data(samples=12)
    recorder = RecordingCallback(capture=("epoch", "batch_i", "step"))
    trainer = hookline.Trainer(
        tiny_model(), loss="cross_entropy", train_data=(x[:6], y[:6]),
        val_data=(x[6:10], y[6:10]), batch_size=2, epochs=2, seed=0, device="cpu",
        callbacks=[recorder], save_dir=tmp_path, verbose=0)
    return trainer, recorder


def test_fit_fires_every_event_in_documented_order(trainer_and_recorder):
    trainer, recorder = trainer_and_recorder
    trainer.fit()
    assert recorder.events == expected_fit(epochs=2, batches=3, saved=True)
    # on_fit_epoch_end fires exactly once per epoch, not again after training
    assert recorder.events.count("on_fit_epoch_end") == 2
    # the three events Ultralytics declares but never fires are fired once per step
    for name in ("optimizer_step", "on_before_zero_grad", "on_params_update"):
        assert recorder.events.count(name) == 6


def test_state_is_ready_when_events_fire(trainer_and_recorder):
    trainer, recorder = trainer_and_recorder
    trainer.fit()
    ends = [snap for name, snap in recorder.records if name == "on_train_batch_end"]
    assert [(s["epoch"], s["batch_i"], s["step"]) for s in ends] == [
        (0, 0, 1), (0, 1, 2), (0, 2, 3), (1, 0, 4), (1, 1, 5), (1, 2, 6)]


def test_standalone_validate_predict_export(trainer_and_recorder, tmp_path):
    trainer, recorder = trainer_and_recorder
    trainer.validate()
    assert recorder.events == [*VAL, "teardown"]
    recorder.records.clear()
    trainer.predict(torch.randn(2, 8))  # one batch of batch_size=2
    per_batch = ["on_predict_batch_start", "on_predict_postprocess_end", "on_predict_batch_end"]
    assert recorder.events == ["on_predict_start", *per_batch, "on_predict_end", "teardown"]
    recorder.records.clear()
    trainer.export("pt", file=tmp_path / "m.pt")
    assert recorder.events == ["on_export_start", "on_export_end", "teardown"]


def test_exception_fires_on_exception_then_teardown(tmp_path):
    x, y = tiny_data(samples=8)
    recorder = RecordingCallback()
    trainer = hookline.Trainer(tiny_model(), loss="cross_entropy", train_data=(x, y),
                               batch_size=4, callbacks=[recorder], verbose=0, device="cpu")
    boom = RuntimeError("boom")

    def explode(trainer):
        raise boom

    trainer.add_callback("on_after_backward", explode)
    with pytest.raises(RuntimeError) as caught:
        trainer.fit()
    assert caught.value is boom  # re-raised unchanged
    assert recorder.events[-2:] == ["on_exception", "teardown"]
    assert "on_train_end" not in recorder.events
    assert trainer.exception is boom


def test_gradient_accumulation_fires_step_events_per_step():
    x, y = tiny_data(samples=10)
    recorder = RecordingCallback(events=("optimizer_step", "on_train_batch_end"))
    trainer = hookline.Trainer(tiny_model(), loss="cross_entropy", train_data=(x, y),
                               batch_size=2, accumulate=2, callbacks=[recorder], verbose=0,
                               device="cpu")
    trainer.fit()
    # 5 batches, a step after batches 2, 4 and the last one
    assert recorder.events == ["on_train_batch_end", "optimizer_step", "on_train_batch_end",
                               "on_train_batch_end", "optimizer_step", "on_train_batch_end",
                               "optimizer_step", "on_train_batch_end"]
    assert trainer.step == 3


def test_docs_page_is_generated_from_the_catalogue():
    page = Path(__file__).resolve().parents[1] / "docs" / "events.md"
    assert page.read_text() == catalogue_markdown(), (
        "docs/events.md is stale: run `hookline events --markdown > docs/events.md`")
    for event in EVENTS:
        assert f"`{event.name}`" in page.read_text()


def test_documented_fit_order_names_only_real_events():
    names = {event.name for event in EVENTS}
    words = {word.strip(":,()") for word in FIT_ORDER.split()}
    mentioned = {word for word in words if word.startswith("on_") or word in names}
    assert mentioned <= names
    assert {e.name for e in EVENTS if e.run == "train"} <= mentioned


def _custom_step(trainer, batch):
    x, y = batch
    logits = trainer.model(x)
    ce = torch.nn.functional.cross_entropy(logits, y)
    return {"ce": ce, "l2": 1e-3 * logits.pow(2).mean(), "preds": logits, "target": y}


class _ModelWithSteps(torch.nn.Module):
    """Declares every step (Lightning's way): the engine runs them instead of its defaults."""

    def __init__(self):
        super().__init__()
        self.net = tiny_model()
        self.calls = []

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch):
        self.calls.append("training_step")
        return torch.nn.functional.cross_entropy(self(batch[0]), batch[1])

    def validation_step(self, batch):
        self.calls.append("validation_step")
        logits = self(batch[0])
        return {"loss": torch.nn.functional.cross_entropy(logits, batch[1]), "preds": logits,
                "target": batch[1]}

    def predict_step(self, batch):
        self.calls.append("predict_step")
        return self(batch[0]).softmax(-1)


@pytest.mark.parametrize("how", ["function", "model methods"])
def test_a_custom_step_is_surrounded_by_the_same_events_in_the_same_order(tmp_path, how):
    x, y = tiny_data(samples=12)
    recorder = RecordingCallback(capture=("epoch", "batch_i", "step"))
    model = tiny_model() if how == "function" else _ModelWithSteps()
    options = {"training_step": _custom_step} if how == "function" else {}
    trainer = hookline.Trainer(
        model, train_data=(x[:6], y[:6]), val_data=(x[6:10], y[6:10]), batch_size=2,
        epochs=2, seed=0, device="cpu", callbacks=[recorder], save_dir=tmp_path, verbose=0,
        loss="cross_entropy" if how == "function" else None, **options)
    trainer.fit()
    assert recorder.events == expected_fit(epochs=2, batches=3, saved=True)
    if how == "model methods":
        assert model.calls.count("training_step") == 6
        assert model.calls.count("validation_step") == 4
        trainer.predict(x[:2])
        assert model.calls[-1] == "predict_step"
    else:
        assert trainer.loss_names == ["ce", "l2"]
