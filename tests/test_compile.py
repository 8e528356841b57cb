"""Compiled models (torch.compile with inductor, on CPU): checkpoints, weights and exports hold
the plain module's names, resume is exact, export works."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import hookline
from hookline.callbacks import OnExceptionCheckpoint
from hookline.checkpoint import load_checkpoint
from hookline.testing import Crash, crash_at, tiny_data, tiny_model


def make(model: torch.nn.Module, **options: Any) -> hookline.Trainer:
    settings: dict[str, Any] = dict(loss="cross_entropy", train_data=tiny_data(32),
                                    val_data=tiny_data(16, seed=1), batch_size=8, epochs=2,
                                    seed=0, device="cpu", verbose=0)
    settings.update(options)
    return hookline.Trainer(model, **settings)


def plain_names() -> set[str]:
    return set(tiny_model().state_dict())


def test_compile_true_trains_compiled_and_saves_plain_names(tmp_path: Path) -> None:
    trainer = make(tiny_model(), compile=True, save_dir=tmp_path)
    trainer.fit()
    assert hasattr(trainer.forward_model, "_orig_mod")  # the step ran the compiled forward
    assert trainer.model is not trainer.forward_model
    state = torch.load(tmp_path / "weights" / "best.pt", weights_only=True)["model"]
    assert set(state) == plain_names()
    fresh = tiny_model()
    fresh.load_state_dict(state)  # into a model that was never compiled


def test_a_model_compiled_by_the_user_is_unwrapped_and_exports(tmp_path: Path) -> None:
    net = tiny_model()
    trainer = make(torch.compile(net), save_dir=tmp_path)
    assert trainer.model is net
    trainer.fit()
    last = torch.load(tmp_path / "weights" / "last.pt", weights_only=True)["model"]
    assert set(last) == plain_names()  # not "_orig_mod.0.weight"
    for format in ("safetensors", "onnx"):
        path = trainer.export(format, file=tmp_path / f"model.{format}")
        assert path.exists()
    from safetensors.torch import load_file
    assert set(load_file(tmp_path / "model.safetensors")) == plain_names()


def test_a_compiled_run_resumes_exactly_compiled_or_not(tmp_path: Path) -> None:
    expected = make(tiny_model(), compile=True, epochs=3)
    expected.fit()
    first = make(tiny_model(), compile=True, epochs=3,
                 callbacks=[OnExceptionCheckpoint(tmp_path, rng="all"),
                            crash_at("on_train_batch_end", 6)])
    with pytest.raises(Crash):
        first.fit()
    payload = load_checkpoint(tmp_path / "on_exception.ckpt")
    assert set(payload["model"]) == plain_names()
    resumed = make(tiny_model(), compile=True, epochs=3,
                   resume=tmp_path / "on_exception.ckpt")
    resumed.fit()
    assert all(torch.equal(a, b) for a, b in zip(resumed.model.state_dict().values(),
                                                 expected.model.state_dict().values()))
    eager = make(tiny_model(), epochs=3, resume=tmp_path / "on_exception.ckpt")
    eager.fit()  # the same file resumes into a model that is not compiled
    assert eager.step == expected.step


def test_the_keras_door_compiles_with_jit_compile_and_exports(tmp_path: Path) -> None:
    x, y = tiny_data(32)
    model = hookline.Model(tiny_model(), loss="cross_entropy", device="cpu")
    model.compile(optimizer="adam", loss="cross_entropy", jit_compile=True)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert hasattr(model._trainer.forward_model, "_orig_mod")
    model.save_weights(tmp_path / "w.safetensors")
    from safetensors.torch import load_file
    assert set(load_file(tmp_path / "w.safetensors")) == plain_names()
