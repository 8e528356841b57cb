"""Several optimizers (a GAN): automatic steps in turn with only each optimizer's parameters
requiring grad, manual steps, per-optimizer frequencies, step events that say which, one
GradScaler, LR callbacks per optimizer, checkpoints holding every optimizer, exact resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import hookline
from hookline.callbacks import LearningRateMonitor, OnExceptionCheckpoint, ReduceLROnPlateau
from hookline.checkpoint import load_checkpoint
from hookline.testing import Crash, ScriptedMetrics, crash_at

bce = nn.functional.binary_cross_entropy_with_logits


class GAN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.g = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 8))
        self.d = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))


def real_data(samples: int = 32) -> torch.Tensor:
    return torch.randn(samples, 8, generator=torch.Generator().manual_seed(1)) * 0.5 + 1.0


def d_loss(gan: GAN, real: torch.Tensor) -> torch.Tensor:
    fake = gan.g(torch.randn(len(real), 4)).detach()
    return bce(gan.d(real), torch.ones(len(real), 1)) + bce(gan.d(fake), torch.zeros(len(real), 1))


def g_loss(gan: GAN, real: torch.Tensor) -> torch.Tensor:
    return bce(gan.d(gan.g(torch.randn(len(real), 4))), torch.ones(len(real), 1))


def automatic_step(trainer: hookline.Trainer, batch: Any) -> torch.Tensor:
    (real,) = batch
    if trainer.optimizer_name == "discriminator":
        return d_loss(trainer.model, real)
    return g_loss(trainer.model, real)


def manual_step(trainer: hookline.Trainer, batch: Any) -> dict[str, torch.Tensor]:
    (real,) = batch
    losses = {}
    for name, loss_of in (("discriminator", d_loss), ("generator", g_loss)):
        with trainer.only_optimizer(name):
            loss = loss_of(trainer.model, real)
            trainer.backward(loss)
        trainer.step_optimizer(name)
        losses[name] = loss.detach()
    return losses


def optimizers(gan: GAN) -> dict[str, torch.optim.Optimizer]:
    return {"discriminator": torch.optim.SGD(gan.d.parameters(), lr=0.05),
            "generator": torch.optim.SGD(gan.g.parameters(), lr=0.02)}


def make(gan: GAN, **options: Any) -> hookline.Trainer:
    settings: dict[str, Any] = dict(optimizer=optimizers(gan), training_step=automatic_step,
                                    train_data=(real_data(),), batch_size=8, epochs=2,
                                    shuffle=False, seed=3, device="cpu", verbose=0)
    settings.update(options)
    return hookline.Trainer(gan, **settings)


def hand_loop(every: dict[str, int] | None = None) -> GAN:
    gan = GAN()
    opts = optimizers(gan)
    params = {"discriminator": list(gan.d.parameters()), "generator": list(gan.g.parameters())}
    torch.manual_seed(3)
    for _ in range(2):
        for i, real in enumerate(real_data().split(8)):
            for name, loss_of in (("discriminator", d_loss), ("generator", g_loss)):
                if i % (every or {}).get(name, 1):
                    continue
                other = params["generator" if name == "discriminator" else "discriminator"]
                for p in other:
                    p.requires_grad_(False)
                loss_of(gan, real).backward()
                for p in other:
                    p.requires_grad_(True)
                opts[name].step()
                opts[name].zero_grad(set_to_none=True)
    return gan


def same(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_automatic_steps_each_optimizer_in_turn_like_a_hand_loop() -> None:
    gan = GAN()
    names: list[str] = []
    trainer = make(gan)
    trainer.add_callback("optimizer_step", lambda t: names.append(t.optimizer_name))
    trainer.fit()
    assert same(gan, hand_loop())
    assert names == ["discriminator", "generator"] * 8 and trainer.step == 16
    assert trainer.loss_names == ["discriminator", "generator"]
    assert trainer.metrics["loss"] == pytest.approx(
        trainer.metrics["train/discriminator"] + trainer.metrics["train/generator"])


def test_manual_optimization_does_the_same_through_the_trainer() -> None:
    gan = GAN()
    make(gan, training_step=manual_step, automatic_optimization=False).fit()
    assert same(gan, hand_loop())


def test_a_frequency_steps_an_optimizer_every_n_batches() -> None:
    gan = GAN()
    trainer = make(gan, optimizer_frequencies={"generator": 2})
    trainer.fit()
    assert trainer.step == 8 + 4
    assert same(gan, hand_loop({"generator": 2}))
    assert trainer.metrics["train/generator"] == trainer.metrics["train/generator"]  # not NaN
    with pytest.raises(ValueError, match="optimizer_frequencies must give each of the 2"):
        make(GAN(), optimizer_frequencies=[1, 0])


def test_frequencies_that_leave_a_batch_with_no_optimizer_are_refused_before_training() -> None:
    gan = GAN()
    before = {key: value.clone() for key, value in gan.state_dict().items()}
    with pytest.raises(ValueError, match=r"optimizer_frequencies=\[2, 3\] leaves batches on "
                                         r"which no optimizer steps.*frequency 1"):
        make(gan, optimizer_frequencies=[2, 3])
    assert all(torch.equal(before[key], value) for key, value in gan.state_dict().items())
    with pytest.raises(ValueError, match=r"no optimizer 'critic'"):
        make(GAN(), training_step=lambda t, b: t.step_optimizer("critic"),
             automatic_optimization=False).fit()


def test_one_grad_scaler_is_updated_once_per_batch_after_every_optimizer() -> None:
    gan = GAN()
    trainer = make(gan, precision="fp16", epochs=1)
    calls: list[str] = []

    def spy(t: hookline.Trainer) -> None:
        scaler = t.scaler
        step, update = scaler.step, scaler.update
        scaler.step = lambda opt, *a, **k: (calls.append("step"), step(opt, *a, **k))[1]
        scaler.update = lambda *a, **k: (calls.append("update"), update(*a, **k))[1]
    trainer.add_callback("on_pretrain_routine_end", spy)
    trainer.fit()
    assert calls == ["step", "step", "update"] * 4


def test_lr_callbacks_name_their_optimizer() -> None:
    gan = GAN()
    trainer = make(gan, val_data=(real_data(8),), validation_step=automatic_step, epochs=3,
                   callbacks=[LearningRateMonitor(key_style="both"),
                              ScriptedMetrics({"val_loss": [1.0, 1.0, 1.0]}),
                              ReduceLROnPlateau(patience=0, factor=0.5, optimizer="generator")])
    trainer.fit()
    assert trainer.optimizers["discriminator"].param_groups[0]["lr"] == 0.05
    assert trainer.optimizers["generator"].param_groups[0]["lr"] < 0.02
    assert {"lr-discriminator", "lr-generator", "lr-SGD", "lr-SGD-1"} <= set(trainer.metrics)


def test_a_checkpoint_holds_every_optimizer_and_resumes_exactly(tmp_path: Path) -> None:
    reference = GAN()
    expected = make(reference, epochs=3)
    expected.fit()
    first = make(GAN(), epochs=3, callbacks=[OnExceptionCheckpoint(tmp_path, rng="all"),
                                             crash_at("on_train_batch_end", 6)])
    with pytest.raises(Crash):
        first.fit()
    payload = load_checkpoint(tmp_path / "on_exception.ckpt")
    assert set(payload["optimizers"]) == {"discriminator", "generator"}
    resumed = make(GAN(), epochs=3, resume=tmp_path / "on_exception.ckpt")
    resumed.fit()
    assert same(resumed.model, reference)
    assert resumed.metrics == expected.metrics


def test_accumulation_and_clipping_act_per_optimizer_like_a_hand_loop() -> None:
    gan = GAN()
    make(gan, accumulate=2, clip_grad_norm=0.5).fit()
    reference = GAN()
    opts = optimizers(reference)
    params = {"discriminator": list(reference.d.parameters()),
              "generator": list(reference.g.parameters())}
    torch.manual_seed(3)
    for _ in range(2):
        for i, real in enumerate(real_data().split(8)):
            for name, loss_of in (("discriminator", d_loss), ("generator", g_loss)):
                other = params["generator" if name == "discriminator" else "discriminator"]
                for p in other:
                    p.requires_grad_(False)
                (loss_of(reference, real) / 2).backward()
                for p in other:
                    p.requires_grad_(True)
                if (i + 1) % 2 == 0:
                    nn.utils.clip_grad_norm_(params[name], 0.5)
                    opts[name].step()
                    opts[name].zero_grad(set_to_none=True)
    assert same(gan, reference)


def test_a_scheduler_per_optimizer_resumes_exactly_mid_epoch(tmp_path: Path) -> None:
    from hookline.callbacks import LRSchedulerCallback

    def schedulers() -> list[Any]:
        return [LRSchedulerCallback(lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5),
                                    interval="step", optimizer=name)
                for name in ("discriminator", "generator")]
    expected = make(GAN(), epochs=3, callbacks=schedulers())
    expected.fit()
    rates = [o.param_groups[0]["lr"] for o in expected.optimizers.values()]
    assert rates == pytest.approx([0.05 * 0.5 ** 4, 0.02 * 0.5 ** 4])  # 12 steps each, by 3
    first = make(GAN(), epochs=3, callbacks=[*schedulers(), OnExceptionCheckpoint(
        tmp_path, rng="all"), crash_at("on_train_batch_end", 7)])
    with pytest.raises(Crash):
        first.fit()
    resumed = make(GAN(), epochs=3, callbacks=schedulers(),
                   resume=tmp_path / "on_exception.ckpt")
    resumed.fit()
    assert same(resumed.model, expected.model)
    assert [o.param_groups[0]["lr"] for o in resumed.optimizers.values()] == rates


def test_the_loop_options_apply_with_several_optimizers() -> None:
    starts: list[int] = []
    trainer = make(GAN(), val_data=(real_data(8),), validation_step=automatic_step,
                   val_check_interval=2, max_steps=5, epochs=3)
    trainer.add_callback("on_val_start", lambda v: starts.append(v.trainer.batch_i))
    trainer.fit()
    assert trainer.step == 6 and trainer.stop_reason == "max_steps=5 reached"  # 2 per batch
    assert starts == [1, 2]  # mid-epoch after the 2nd batch, then the epoch's end


def test_learning_rate_scheduler_sets_the_rate_of_the_optimizer_it_names() -> None:
    from hookline.callbacks import LearningRateScheduler
    trainer = make(GAN(), callbacks=[LearningRateScheduler(lambda epoch, lr: 0.001,
                                                           optimizer="discriminator")])
    trainer.fit()
    assert trainer.optimizers["discriminator"].param_groups[0]["lr"] == 0.001
    assert trainer.optimizers["generator"].param_groups[0]["lr"] == 0.02
    with pytest.raises(ValueError, match=r"optimizer='critic'\) names no optimizer"):
        make(GAN(), callbacks=[LearningRateScheduler(lambda e, lr: lr, optimizer="critic")]).fit()
