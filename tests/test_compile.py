"""Compiled models (torch.compile with inductor, on CPU): checkpoints, weights and exports hold
the plain module's names, resume is exact, export works."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import hookline
from hookline.callbacks import EarlyStopping, ModelCheckpoint, OnExceptionCheckpoint
from hookline.checkpoint import (
    CheckpointMismatchError,
    build_checkpoint,
    load_checkpoint,
    write_checkpoint,
)
from hookline.testing import Crash, ScriptedMetrics, crash_at, tiny_data, tiny_model


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


# --- state dicts whose keys carry a wrapper's prefix ----------------------------------------
def pending_grads_checkpoint(tmp_path: Path) -> dict[str, Any]:
    """A full checkpoint taken between two batches of one accumulated step: its gradients are
    pending, so a resume that dropped them would end with other weights."""
    taken: dict[str, Any] = {}

    def take(trainer: hookline.Trainer) -> None:
        if not taken:
            taken.update(build_checkpoint(trainer))
            raise Crash("after batch 0")
    first = make(tiny_model(), accumulate=2, callbacks=[
        hookline.LambdaCallback(on_train_batch_end=take)])
    with pytest.raises(Crash):
        first.fit()
    assert taken["run"]["grads"]
    return taken


def with_prefix(payload: dict[str, Any], prefix: str) -> dict[str, Any]:
    run = {**payload["run"], "grads": {prefix + k: v for k, v in payload["run"]["grads"].items()}}
    return {**payload, "model": {prefix + k: v for k, v in payload["model"].items()}, "run": run}


@pytest.mark.parametrize("prefix", ["_orig_mod.", "module.", "module._orig_mod."])
def test_a_checkpoint_with_a_wrapper_prefix_resumes_a_plain_model_exactly(
        tmp_path: Path, prefix: str) -> None:
    payload = pending_grads_checkpoint(tmp_path)
    write_checkpoint(payload, tmp_path / "plain.ckpt")
    write_checkpoint(with_prefix(payload, prefix), tmp_path / "wrapped.ckpt")
    expected = make(tiny_model(), accumulate=2, resume=tmp_path / "plain.ckpt")
    expected.fit()
    resumed = make(tiny_model(), accumulate=2, resume=tmp_path / "wrapped.ckpt")
    resumed.fit()
    assert set(resumed.model.state_dict()) == plain_names()
    assert all(torch.equal(a, b) for a, b in zip(resumed.model.state_dict().values(),
                                                 expected.model.state_dict().values()))


class CountingDataParallel(torch.nn.DataParallel):
    """DataParallel (on the CPU it calls its module directly) counting the calls it gets."""

    calls = 0

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        type(self).calls += 1
        return super().forward(*args, **kwargs)


def test_a_data_parallel_model_trains_through_its_wrapper_and_saves_plain_names(
        tmp_path: Path) -> None:
    payload = pending_grads_checkpoint(tmp_path)
    write_checkpoint(payload, tmp_path / "plain.ckpt")

    def callbacks() -> list[Any]:  # epoch 1 is the best: a resume at epoch 2 restores it
        return [ScriptedMetrics({"val_loss": [3, 1, 2]}),
                ModelCheckpoint(dirpath=tmp_path / "dp", filename="m-{epoch}"),
                EarlyStopping(patience=5, restore_best_weights=True)]
    expected = make(tiny_model(), accumulate=2, resume=tmp_path / "plain.ckpt",
                    callbacks=callbacks())
    expected.fit()
    net = tiny_model()
    CountingDataParallel.calls = 0
    wrapped = make(CountingDataParallel(net), accumulate=2, resume=tmp_path / "plain.ckpt",
                   callbacks=callbacks())
    assert wrapped.model is net
    wrapped.fit()
    # 7 training batches left of 2 epochs of 4, and 2 validations of 2 batches
    assert CountingDataParallel.calls == 7 + 4
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                 expected.model.state_dict().values()))
    saved = load_checkpoint(tmp_path / "dp" / "m-1.pt")
    key = callbacks()[2].state_key
    assert set(saved["model"]) == plain_names()  # no "module."
    assert set(saved["callbacks"][key]["best_weights"]) == plain_names()
    # a file an older version wrote from a DataParallel model carries "module." (the best
    # weights in EarlyStopping's state too): it still resumes a plain model exactly
    best = saved["callbacks"][key]["best_weights"]
    old = with_prefix(saved, "module.")
    old["callbacks"] = {**saved["callbacks"], key: {
        **saved["callbacks"][key], "best_weights": {"module." + k: v for k, v in best.items()}}}
    write_checkpoint(old, tmp_path / "old.ckpt")
    again = make(tiny_model(), accumulate=2, epochs=3, resume=tmp_path / "old.ckpt",
                 callbacks=callbacks())
    again.fit()
    assert again.step == 6
    assert all(torch.equal(again.model.state_dict()[k], v) for k, v in best.items())


def test_a_distributed_data_parallel_model_is_replaced_by_the_plain_module(
        tmp_path: Path) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    dist.init_process_group("gloo", init_method=(tmp_path / "store").as_uri(), rank=0,
                            world_size=1)  # a file store: no socket
    try:
        net = tiny_model()
        user_ddp = DistributedDataParallel(net)
        trainer = make(torch.compile(user_ddp), save_dir=tmp_path / "run")
        assert trainer.model is net
        trainer.fit()
        # no rank to reduce with in a one-process group: the engine's forward is the plain
        # module, compiled again (the user's compile kept, their DDP dropped)
        assert trainer.forward_model._orig_mod is net
        plain = make(tiny_model())
        plain.fit()
        assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                     plain.model.state_dict().values()))
        last = torch.load(tmp_path / "run" / "weights" / "last.pt", weights_only=True)
        assert set(last["model"]) == plain_names()
    finally:
        dist.destroy_process_group()


def test_a_prefixed_checkpoint_of_another_model_is_refused_naming_the_prefix(
        tmp_path: Path) -> None:
    payload = pending_grads_checkpoint(tmp_path)
    other = {**payload, "model": {**payload["model"]}}
    other["model"]["2.weight"] = torch.zeros(5, 16)  # another head
    write_checkpoint(with_prefix(other, "_orig_mod."), tmp_path / "other.ckpt")
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointMismatchError, match=r"shape mismatch: 2\.weight .*The "
                                                      r"checkpoint's keys carry the prefix "
                                                      r"'_orig_mod\.' \(torch\.compile\)"):
        make(model, accumulate=2, resume=tmp_path / "other.ckpt").fit()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


def with_compiled_first_layer() -> torch.nn.Module:
    """tiny_model with its first layer compiled by the user (keys ``0._orig_mod.weight``)."""
    model = tiny_model()
    model[0] = torch.compile(model[0], backend="eager")
    return model


def test_a_run_with_a_compiled_submodule_resumes_into_the_plain_model_and_back(
        tmp_path: Path) -> None:
    from hookline.checkpoint import check_model_state
    compiled = with_compiled_first_layer()
    assert "0._orig_mod.weight" in compiled.state_dict()
    # the state loads both ways, every key matched to the other model's name
    plain_state = check_model_state(tiny_model(), compiled.state_dict())
    assert set(plain_state) == plain_names()
    assert set(check_model_state(with_compiled_first_layer(), plain_state)) == \
        set(compiled.state_dict())
    # a run saved with the compiled layer continues exactly in the plain model, and the
    # reverse, as the same run uninterrupted does
    for saved_by, resumed_by in ((with_compiled_first_layer, tiny_model),
                                 (tiny_model, with_compiled_first_layer)):
        folder = tmp_path / saved_by.__name__
        make(saved_by(), epochs=1, callbacks=[ModelCheckpoint(dirpath=folder)]).fit()
        resumed = make(resumed_by(), epochs=2, resume=folder)
        with pytest.warns(RuntimeWarning, match="holds state for callbacks this run does not"):
            resumed.fit()  # (the saving run's ModelCheckpoint)
        straight = make(tiny_model(), epochs=2)
        straight.fit()
        for name, value in straight.model.state_dict().items():
            own = name if resumed_by is tiny_model else name.replace("0.", "0._orig_mod.", 1)
            assert torch.equal(resumed.model.state_dict()[own], value), name
