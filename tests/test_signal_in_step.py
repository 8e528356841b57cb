"""A SIGTERM landing inside optimizer.step() waits for the batch's end, so the checkpoint taken
on it is exact; a checkpoint that cannot be loaded is passed over by resume=True."""

from __future__ import annotations

import os
import signal
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

import hookline
from hookline.callbacks import OnExceptionCheckpoint
from hookline.engine.base import Terminated
from hookline.testing import tiny_data, tiny_model


class SignalledAdam(torch.optim.Adam):
    """Adam that receives SIGTERM half-way through its n-th step: between its two groups."""

    def __init__(self, params: Any, at: int | None) -> None:
        params = list(params)
        super().__init__([{"params": params[:2]}, {"params": params[2:]}], lr=0.01)
        self.at, self.calls = at, 0

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        self.calls += 1
        if self.calls != self.at:
            return super().step(closure)
        groups = self.param_groups
        self.param_groups = groups[:1]
        super().step()  # the first group moves...
        os.kill(os.getpid(), signal.SIGTERM)  # ...the signal lands...
        self.param_groups = groups[1:]
        super().step()  # ...and the second group must move too, before anyone stops
        self.param_groups = groups
        return None


def make(at: int | None, **options: Any) -> hookline.Trainer:
    model = tiny_model()
    return hookline.Trainer(model, optimizer=SignalledAdam(model.parameters(), at),
                            loss="cross_entropy", train_data=tiny_data(48), batch_size=8,
                            epochs=2, seed=0, device="cpu", verbose=0, **options)


def test_a_sigterm_inside_the_step_waits_for_the_batch_end_and_resumes_exactly(
        tmp_path: Path) -> None:
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # fit installs its handler
    expected = make(None)
    expected.fit()
    first = make(4, callbacks=[OnExceptionCheckpoint(tmp_path, rng="all")])
    with pytest.raises(Terminated):
        first.fit()
    assert first.step == 4 and first.batch_i == 3  # the 4th step finished, then it stopped
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an exact checkpoint: no "not exact" warning
        resumed = make(None, resume=tmp_path / "on_exception.ckpt")
        resumed.fit()
    state, reference = resumed.model.state_dict(), expected.model.state_dict()
    assert [k for k in state if not torch.equal(state[k], reference[k])] == []
    steps = [group["params"][0] for group in resumed.optimizer.param_groups]
    assert {int(resumed.optimizer.state[p]["step"]) for p in steps} == {12}  # never mixed


def test_a_checkpoint_whose_optimizer_state_is_cut_short_is_passed_over(tmp_path: Path) -> None:
    from hookline.callbacks import BackupAndRestore
    from hookline.checkpoint import load_checkpoint, write_checkpoint
    from hookline.testing import Crash, crash_at
    first = hookline.Trainer(tiny_model(), optimizer="adam", loss="cross_entropy",
                             train_data=tiny_data(48), batch_size=8, epochs=2, seed=0,
                             device="cpu", verbose=0,
                             callbacks=[BackupAndRestore(tmp_path, save_freq=2,
                                                         delete_checkpoint=False),
                                        crash_at("on_train_batch_end", 5)])
    with pytest.raises(Crash):
        first.fit()
    good = load_checkpoint(tmp_path / "latest.ckpt")
    damaged = load_checkpoint(tmp_path / "latest.ckpt")
    damaged["optimizer"]["state"][0].pop("exp_avg_sq")  # as if cut inside Adam's step
    write_checkpoint(damaged, tmp_path / "newer.ckpt")
    resumed = hookline.Trainer(tiny_model(), optimizer="adam", loss="cross_entropy",
                               train_data=tiny_data(48), batch_size=8, epochs=2, seed=0,
                               device="cpu", verbose=0, resume=True, save_dir=tmp_path)
    with pytest.warns(RuntimeWarning, match=r"newer.ckpt: the state of optimizer 'optimizer' "
                                            r"is incomplete"):
        resumed.fit()
    assert resumed.resumed_from == tmp_path / "latest.ckpt"
    assert good["run"]["step"] == 4


def test_check_finite_stops_at_the_first_nan_loss_naming_the_batch_and_the_inputs() -> None:
    from hookline.engine.trainer import NonFiniteLossError
    x, y = tiny_data(48)
    x[21, 3] = float("nan")  # sample 21: the third batch of 8
    model = tiny_model()
    trainer = hookline.Trainer(model, optimizer="sgd", loss="cross_entropy", train_data=(x, y),
                               batch_size=8, shuffle=False, device="cpu", verbose=0,
                               check_finite=True)
    with pytest.raises(NonFiniteLossError, match=r"the loss is nan at epoch 0, batch 2 \(after "
                                                 r"2 optimizer steps\); the batch holds "
                                                 r"non-finite values in batch\[0\] \(1 of 64\)"):
        trainer.fit()
    assert all(torch.isfinite(p).all() for p in model.parameters())  # no NaN step was taken
    silent = hookline.Trainer(tiny_model(), optimizer="sgd", loss="cross_entropy",
                              train_data=(x, y), batch_size=8, shuffle=False, device="cpu",
                              verbose=0)
    silent.fit()  # without the option it trains on, as torch does
    assert silent.metrics["loss"] != silent.metrics["loss"]  # NaN


def test_detect_anomaly_is_on_only_inside_fit_and_leaves_a_users_setting_alone() -> None:
    seen: list[bool] = []
    for option in (True, False):
        trainer = hookline.Trainer(tiny_model(), loss="cross_entropy", train_data=tiny_data(16),
                                   device="cpu", verbose=0, detect_anomaly=option)
        trainer.add_callback("on_train_batch_end",
                             lambda t: seen.append(torch.is_anomaly_enabled()))
        torch.autograd.set_detect_anomaly(not option)  # the user's own global setting
        try:
            trainer.fit()
            assert torch.is_anomaly_enabled() is (not option)  # put back after fit
        finally:
            torch.autograd.set_detect_anomaly(False)
    assert seen == [True, True]  # on when asked; a user's own True kept when not asked
