"""A real Hugging Face model, built from a small config with random weights (no download):
dict batches, the model's own loss, equal to a hand-written loop, resumed exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import transformers  # the hf extra, which scripts/test.sh installs

import hookline
from hookline.callbacks import OnExceptionCheckpoint
from hookline.testing import Crash, crash_at


def gpt2() -> torch.nn.Module:
    config = transformers.GPT2Config(vocab_size=16, n_positions=16, n_embd=32, n_layer=2,
                                     n_head=2)
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(config)


def text(samples: int = 48) -> dict[str, torch.Tensor]:
    """Counting sequences modulo 16 from random starts: next-token prediction is learnable."""
    starts = torch.randint(0, 16, (samples, 1), generator=torch.Generator().manual_seed(1))
    ids = (starts + torch.arange(12)) % 16
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}


def trainer(model: torch.nn.Module, **options: Any) -> hookline.Trainer:
    settings: dict[str, Any] = dict(
        optimizer=lambda p: torch.optim.AdamW(p, lr=3e-3), train_data=text(), batch_size=8,
        epochs=2, shuffle=False, seed=3, verbose=0, device="cpu")
    settings.update(options)
    return hookline.Trainer(model, **settings)


def test_a_gpt2_trains_on_dict_batches_with_its_own_loss_like_a_hand_loop() -> None:
    reference = gpt2()
    optimizer = torch.optim.AdamW(reference.parameters(), lr=3e-3)
    data = text()
    torch.manual_seed(3)  # what Trainer(seed=3) does when fit starts (dropout draws from it)
    losses = []
    for _ in range(2):
        for start in range(0, 48, 8):
            batch = {key: value[start:start + 8] for key, value in data.items()}
            loss = reference(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
    model = gpt2()
    run = trainer(model, val_data=text(16))
    run.fit()
    state, expected = model.state_dict(), reference.state_dict()
    assert [name for name in state if not torch.equal(state[name], expected[name])] == []
    assert run.metrics["loss"] == pytest.approx(sum(losses[6:]) / 6)
    assert "val_loss" in run.metrics


def test_its_loss_goes_down_and_it_resumes_exactly_mid_epoch(tmp_path: Path) -> None:
    expected = trainer(gpt2(), epochs=3)
    expected.fit()
    history = expected.callbacks.find(hookline.History)[0].history["loss"]
    assert history[-1] < 0.7 * history[0]
    first = trainer(gpt2(), epochs=3, callbacks=[OnExceptionCheckpoint(tmp_path, rng="all"),
                                                 crash_at("on_train_batch_end", 9)])
    with pytest.raises(Crash):
        first.fit()
    resumed = trainer(gpt2(), epochs=3, resume=tmp_path / "on_exception.ckpt")
    resumed.fit()
    state, reference = resumed.model.state_dict(), expected.model.state_dict()
    assert [name for name in state if not torch.equal(state[name], reference[name])] == []
    assert resumed.metrics == expected.metrics
