"""Exceptions and interrupts: on_exception fires, teardown always runs, the original exception
is re-raised unchanged (same object, same type); SIGTERM during fit acts like Ctrl-C."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import hookline
from hookline.callbacks import OnExceptionCheckpoint
from hookline.engine.base import Terminated
from hookline.testing import RecordingCallback, tiny_data, tiny_model


class Failing(nn.Module):
    """A model whose forward pass fails at the n-th call."""

    def __init__(self, n: int, error: BaseException) -> None:
        super().__init__()
        self.inner, self.n, self.error, self.calls = tiny_model(), n, error, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.n:
            raise self.error
        return self.inner(x)


def trainer_for(model: nn.Module, *callbacks: Any, **options: Any) -> hookline.Trainer:
    options.setdefault("epochs", 2)
    return hookline.Trainer(model, loss="cross_entropy", train_data=tiny_data(32),
                            val_data=tiny_data(16, seed=1), batch_size=8,
                            callbacks=list(callbacks), verbose=0, device="cpu", **options)


def last_events(recorder: RecordingCallback) -> list[str]:
    return recorder.events[-2:]


@pytest.mark.parametrize("error", [RuntimeError("CUDA out of memory"),
                                   KeyboardInterrupt(), ValueError("bad batch")])
def test_on_exception_then_teardown_then_the_same_exception(error: BaseException) -> None:
    recorder = RecordingCallback(capture=("exception",))
    trainer = trainer_for(Failing(3, error), recorder)
    with pytest.raises(type(error)) as caught:
        trainer.fit()
    assert caught.value is error  # re-raised unchanged, not wrapped
    assert last_events(recorder) == ["on_exception", "teardown"]
    assert recorder.records[-2][1]["exception"] is error


def test_an_exception_from_a_callback_or_validation_also_fires_on_exception() -> None:
    class Guard(hookline.Callback):
        def on_val_batch_end(self, validator: Any) -> None:
            raise ArithmeticError("in validation")

    recorder = RecordingCallback()
    with pytest.raises(ArithmeticError):
        trainer_for(tiny_model(), recorder, Guard()).fit()
    assert last_events(recorder) == ["on_exception", "teardown"]


def test_a_successful_run_tears_down_without_on_exception() -> None:
    recorder = RecordingCallback()
    trainer_for(tiny_model(), recorder).fit()
    assert recorder.events[-1] == "teardown" and "on_exception" not in recorder.events


def test_a_failing_on_exception_handler_does_not_replace_the_error() -> None:
    class Clumsy(hookline.Callback):
        def on_exception(self, engine: Any) -> None:
            raise OSError("could not save")

    error = RuntimeError("original")
    with pytest.raises(RuntimeError) as caught:
        trainer_for(Failing(2, error), Clumsy()).fit()
    assert caught.value is error
    assert any("on_exception also failed: OSError: could not save" in note
               for note in caught.value.__notes__)


def test_sigterm_during_fit_interrupts_checkpoints_and_restores_the_handler(
        tmp_path: Path) -> None:
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    sent = []

    def terminate(trainer: Any) -> None:
        if trainer.step == 5 and not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)  # a scheduler preempting the job

    recorder = RecordingCallback(events=("on_exception", "teardown"))
    saver = OnExceptionCheckpoint(tmp_path)
    trainer = trainer_for(tiny_model(), saver, recorder, epochs=3, seed=2)
    trainer.add_callback("on_train_batch_end", terminate)
    with pytest.raises(Terminated) as caught:
        trainer.fit()
    assert isinstance(caught.value, KeyboardInterrupt) and caught.value.signum == signal.SIGTERM
    assert recorder.events == ["on_exception", "teardown"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the old handler is back
    # the checkpoint written on the way out resumes to the uninterrupted result
    resumed = trainer_for(tiny_model(), epochs=3, seed=2, resume=saver.saved)
    resumed.fit()
    expected = trainer_for(tiny_model(), epochs=3, seed=2)
    expected.fit()
    for name, tensor in expected.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], tensor)


def test_a_sigterm_handler_of_your_own_is_left_alone() -> None:
    received = []

    def mine(signum: int, frame: Any) -> None:
        received.append(signum)

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        trainer = trainer_for(tiny_model(), epochs=1)
        trainer.add_callback("on_train_epoch_end",
                             lambda t: os.kill(os.getpid(), signal.SIGTERM))
        trainer.fit()  # not interrupted: your handler decides
        assert received == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_predict_or_validate_inside_fit_is_part_of_the_fit(tmp_path: Path) -> None:
    """trainer.predict()/validate() from an epoch-end callback share the fit's callbacks:
    they fire no teardown, so the CSV logger keeps every epoch's row (before, its file was
    closed and reopened for writing, keeping only the last epoch); teardown comes once, at
    the fit's end. An error escaping the nested run reaches the fit's on_exception once."""
    from hookline.callbacks import CSVLogger

    x, _ = tiny_data(16)
    recorder = RecordingCallback(events=("on_exception", "teardown"))
    trainer = trainer_for(tiny_model(), CSVLogger(tmp_path / "log.csv"), recorder, epochs=3)
    trainer.add_callback("on_fit_epoch_end", lambda t: (t.predict(x[:4]), t.validate()))
    trainer.fit()
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["0", "1", "2"]
    assert recorder.events == ["teardown"]
    trainer.predict(x)  # outside a fit: a run of its own again
    assert recorder.events == ["teardown", "teardown"]

    recorder = RecordingCallback(events=("on_exception", "teardown"))
    broken = trainer_for(tiny_model(), recorder, epochs=2)
    broken.add_callback("on_fit_epoch_end", lambda t: t.predict("not data"))
    with pytest.raises(TypeError):
        broken.fit()
    assert recorder.events == ["on_exception", "teardown"]
