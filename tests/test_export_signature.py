"""Export needs no example after a fit: the input signature recorded from training, kept in
weights files and checkpoints, drives TorchScript and ONNX export of any input structure."""

from __future__ import annotations

import warnings

import numpy as np
import onnxruntime
import pytest
import torch
from torch import nn

import hookline
from hookline.checkpoint import build_checkpoint, write_checkpoint
from hookline.engine.exporter import Exporter
from hookline.signature import (
    describe_signature,
    example_from_signature,
    load_signature,
    signature_of,
)


class NamedInputs(nn.Module):
    """Two inputs of different widths, so swapped inputs cannot run."""

    def __init__(self) -> None:
        super().__init__()
        self.image = nn.Linear(4, 3)
        self.extra = nn.Linear(6, 3)

    def forward(self, image: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        return self.image(image) + self.extra(extra)


class TwoOutputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.linear(left) * right.sum(1, keepdim=True), self.linear(right)


class Tokens(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(ids).mean(1))


@hookline.serializable
def linear_net(inputs: int = 8, outputs: int = 4) -> nn.Module:
    return nn.Sequential(nn.Linear(inputs, outputs))


def _session(path):
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _train(model, data, **options):
    settings = {"loss": "cross_entropy", "train_data": data, "epochs": 1, "batch_size": 8,
                "verbose": 0, "device": "cpu", "default_callbacks": False}
    settings.update(options)
    trainer = hookline.Trainer(model, **settings)
    trainer.fit()
    return trainer


def _named_data(samples: int = 32):
    # keys in the other order than forward's arguments: names, not positions, must decide
    x = {"extra": torch.randn(samples, 6), "image": torch.randn(samples, 4)}
    return x, torch.randint(0, 3, (samples,))


def test_keras_door_exports_onnx_right_after_fit_without_an_example(tmp_path, monkeypatch,
                                                                     capsys):
    monkeypatch.chdir(tmp_path)
    model = hookline.Model(nn.Sequential(nn.Linear(8, 4)), optimizer="adam",
                           loss="cross_entropy")
    x = np.random.rand(40, 8).astype("float32")
    model.fit(x, np.random.randint(0, 4, 40), verbose=0)
    path = model.export("onnx")
    assert path == tmp_path.joinpath("model.onnx").relative_to(tmp_path)
    assert f"exported onnx to {path}" in capsys.readouterr().out
    session = _session(tmp_path / path)
    (only,) = session.get_inputs()
    assert only.shape[0] == "batch" and only.shape[1] == 8
    batch = np.random.rand(5, 8).astype("float32")  # a batch size fit never saw
    expected = model.module(torch.from_numpy(batch)).detach().numpy()
    np.testing.assert_allclose(session.run(None, {only.name: batch})[0], expected, atol=1e-5)


def test_a_loaded_keras_model_exports_from_the_sample_in_its_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = hookline.Model(linear_net(), loss="cross_entropy")
    model.fit(np.random.rand(16, 8).astype("float32"), np.random.randint(0, 4, 16), verbose=0)
    model.save(tmp_path / "net.hookline")
    again = hookline.load_model(tmp_path / "net.hookline")
    path = again.export("onnx", file=tmp_path / "again.onnx")
    assert _session(path).get_inputs()[0].shape[1] == 8


def test_keras_door_export_goes_to_the_fits_save_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = hookline.Model(nn.Sequential(nn.Linear(8, 4)), loss="cross_entropy")
    model.fit(np.random.rand(16, 8).astype("float32"), np.random.randint(0, 4, 16), verbose=0,
              save_dir=tmp_path / "run")
    assert model.export("torchscript") == tmp_path / "run" / "weights" / "model.torchscript"
    assert not (tmp_path / "model.torchscript").exists()


def test_dict_inputs_export_to_onnx_with_their_names_and_a_dynamic_batch(tmp_path, capsys):
    trainer = _train(NamedInputs(), _named_data(), save_dir=tmp_path / "run")
    path = trainer.export("onnx")
    assert path == tmp_path / "run" / "weights" / "model.onnx"
    assert f"exported onnx to {path}" in capsys.readouterr().out
    session = _session(path)
    assert [(node.name, node.shape) for node in session.get_inputs()] == [
        ("image", ["batch", 4]), ("extra", ["batch", 6])]
    image, extra = torch.randn(7, 4), torch.randn(7, 6)
    got = session.run(None, {"image": image.numpy(), "extra": extra.numpy()})[0]
    np.testing.assert_allclose(got, trainer.model(image=image, extra=extra).detach().numpy(),
                               atol=1e-5)


def test_dict_inputs_export_to_torchscript(tmp_path):
    trainer = _train(NamedInputs(), _named_data())
    path = trainer.export("torchscript", file=tmp_path / "named.torchscript")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        loaded = torch.jit.load(str(path))
    image, extra = torch.randn(3, 4), torch.randn(3, 6)
    torch.testing.assert_close(loaded(image=image, extra=extra),
                               trainer.model(image=image, extra=extra))


def test_a_model_returning_a_dict_exports_to_torchscript_as_to_onnx(tmp_path):
    """A detector's forward returns a dict of maps: the trace keeps it (strict=False), where
    torch.jit.trace refused it before; the file's outputs equal PyTorch's."""
    from hookline.detection import shapes_detector

    model = shapes_detector(width=8).eval()
    image = torch.rand(2, 3, 32, 32)
    exporter = Exporter(model, format="torchscript", file=tmp_path / "detector.torchscript",
                        example_input=image)
    path = exporter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        loaded = torch.jit.load(str(path))
    outputs, expected = loaded(image), model(image)
    assert isinstance(expected, dict) and set(outputs) == set(expected)
    for name in expected:
        torch.testing.assert_close(outputs[name], expected[name])


def test_several_positional_inputs_take_forwards_argument_names(tmp_path):
    x = (torch.randn(16, 4), torch.randn(16, 4))
    trainer = _train(TwoOutputs(), (x, torch.zeros(16)),
                     loss=lambda output, target: output[0].pow(2).mean())
    path = trainer.export("onnx", file=tmp_path / "two.onnx")
    session = _session(path)
    assert [node.name for node in session.get_inputs()] == ["left", "right"]
    assert [node.name for node in session.get_outputs()] == ["output_0", "output_1"]
    assert trainer.export("torchscript", file=tmp_path / "two.ts").exists()


def test_an_export_that_disagrees_with_pytorch_is_still_caught(tmp_path):
    class Branchy(NamedInputs):
        def forward(self, image, extra):
            return super().forward(image, extra) * (2.0 if float(image.sum()) > 0 else -1.0)

    trainer = _train(Branchy(), _named_data())
    # (torch.export refuses such a model outright, so ONNX never gets this far)
    exporter = Exporter(trainer.model, format="torchscript", file=tmp_path / "b.ts",
                        example_input={"image": torch.ones(2, 4), "extra": torch.ones(2, 6)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exporter.export()  # the traced example agrees with itself
    assert exporter.max_abs_diff == 0.0
    exporter.example_input = {"image": -torch.ones(2, 4), "extra": torch.ones(2, 6)}
    with pytest.raises(RuntimeError, match="disagrees with the PyTorch model"):
        exporter._check()  # named inputs, checked on another example: the frozen branch shows


def test_signature_is_recorded_once_from_the_models_first_call():
    model = NamedInputs()
    trainer = _train(model, _named_data(20))  # batches of 8, 8 and 4
    assert trainer.input_signature == {
        "args": [], "names": [],
        "kwargs": {"extra": {"shape": [None, 6], "dtype": "float32"},
                   "image": {"shape": [None, 4], "dtype": "float32"}}}
    assert not model._forward_pre_hooks, "the recording hook must remove itself"
    assert describe_signature(trainer.input_signature) == \
        "extra: float32[N, 6], image: float32[N, 4]"


def test_labels_a_model_took_for_its_own_loss_are_not_export_inputs():
    class OwnLoss(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(4, 2)

        def forward(self, features, labels=None):
            logits = self.linear(features)
            if labels is None:
                return {"logits": logits}
            return {"logits": logits, "loss": nn.functional.cross_entropy(logits, labels)}

    data = {"features": torch.randn(16, 4), "labels": torch.randint(0, 2, (16,))}
    trainer = hookline.Trainer(OwnLoss(), train_data=data, epochs=1, verbose=0, device="cpu",
                               default_callbacks=False, metrics=[])
    trainer.fit()
    assert list(trainer.input_signature["kwargs"]) == ["features"]
    needs = signature_of((), {"x": torch.zeros(2, 1), "labels": torch.zeros(2)}, NamedInputs())
    assert list(needs["kwargs"]) == ["x", "labels"], "kept when forward does not take it"


def test_integer_inputs_are_rebuilt_with_their_dtype(tmp_path):
    ids = torch.randint(0, 10, (24, 5))
    trainer = _train(Tokens(), (ids, torch.randint(0, 2, (24,))))
    args, kwargs = example_from_signature(trainer.input_signature, batch_size=3)
    assert args[0].dtype == torch.int64 and args[0].shape == (3, 5) and not kwargs
    session = _session(trainer.export("onnx", file=tmp_path / "ids.onnx"))
    assert session.get_inputs()[0].name == "ids"
    assert session.get_inputs()[0].type == "tensor(int64)"


def test_nested_inputs_round_trip_through_the_signature():
    signature = signature_of((torch.zeros(2, 3), [torch.ones(2, 1, dtype=torch.bool), 4]),
                             {"mask": {"a": torch.zeros(2, 2, dtype=torch.float16)}})
    args, kwargs = example_from_signature(signature, batch_size=5)
    assert args[0].shape == (5, 3) and isinstance(args[1], list)
    assert args[1][0].dtype == torch.bool and args[1][0].shape == (5, 1) and args[1][1] == 4
    assert kwargs["mask"]["a"].dtype == torch.float16 and kwargs["mask"]["a"].shape == (5, 2)
    assert signature["names"] == ["input_0", "input_1"]


def test_weights_files_keep_the_signature_for_export_elsewhere(tmp_path):
    trainer = _train(NamedInputs(), _named_data(), save_dir=tmp_path / "run", epochs=2)
    best = tmp_path / "run" / "weights" / "best.pt"
    assert load_signature(best) == trainer.input_signature
    assert load_signature(tmp_path / "run" / "weights" / "last.pt") == trainer.input_signature
    fresh = NamedInputs()  # e.g. `hookline export weights=best.pt`: a new process
    fresh.load_state_dict(torch.load(best, weights_only=True)["model"])
    exporter = Exporter(fresh, format="onnx", file=tmp_path / "from_weights.onnx",
                        signature=best)
    exporter.export()
    assert exporter.max_abs_diff is not None and exporter.max_abs_diff < 1e-4
    assert [node.name for node in _session(exporter.file).get_inputs()] == ["image", "extra"]


def test_model_checkpoint_weights_only_files_keep_it(tmp_path):
    from hookline.callbacks import ModelCheckpoint
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="w", save_weights_only=True,
                                 background=False)
    trainer = _train(Tokens(), (torch.randint(0, 10, (16, 3)), torch.randint(0, 2, (16,))),
                     callbacks=[checkpoint])
    assert load_signature(tmp_path / "w.pt") == trainer.input_signature


def test_full_checkpoints_keep_it_and_a_resume_restores_it(tmp_path):
    trainer = _train(NamedInputs(), _named_data(), epochs=1)
    path = tmp_path / "run.ckpt"
    write_checkpoint(build_checkpoint(trainer), path)
    assert load_signature(path) == trainer.input_signature
    # resuming a finished run trains nothing, so the model is never called: the signature
    # can only come from the checkpoint
    resumed = _train(NamedInputs(), _named_data(), epochs=1, resume=path)
    assert resumed.step == trainer.step
    assert resumed.input_signature == trainer.input_signature
    assert resumed.export("onnx", file=tmp_path / "resumed.onnx").exists()


def test_export_before_fit_reads_a_dict_batch_instead_of_failing(tmp_path):
    # before: TypeError: unhashable type: 'slice' (the first batch's inputs sliced [:1])
    trainer = hookline.Trainer(NamedInputs(), loss="cross_entropy", train_data=_named_data(),
                               verbose=0, device="cpu", default_callbacks=False)
    assert trainer.input_signature is None
    path = trainer.export("onnx", file=tmp_path / "early.onnx")
    assert [node.name for node in _session(path).get_inputs()] == ["image", "extra"]


def test_missing_inputs_are_named_with_the_fix(tmp_path):
    with pytest.raises(ValueError, match="needs example_input=.*or signature="):
        Exporter(NamedInputs(), format="onnx")
    bare = hookline.checkpoint.save_weights(NamedInputs(), tmp_path / "bare.pt")
    assert load_signature(bare) is None
    with pytest.raises(ValueError, match="keeps no input signature.*example_input="):
        Exporter(NamedInputs(), format="onnx", signature=bare)
    with pytest.raises(ValueError, match="not an input signature"):
        example_from_signature({"shape": [None, 3]})
    odd = signature_of((object(),), {})
    with pytest.raises(ValueError, match="argument 0 was a object.*pass example_input="):
        example_from_signature(odd)


def test_export_before_fit_of_a_custom_step_asks_for_the_inputs_and_after_fit_needs_none(
        tmp_path):
    """A custom step decides what the model is called with (here it splits one packed tensor
    in two): the batch rules would hand the model the packed tensor, so before fit export asks
    for an example; after fit the recorded call is used."""
    def step(trainer, batch):
        packed, target = batch
        output = trainer.model(packed[:, :4], packed[:, 4:])
        return torch.nn.functional.cross_entropy(output, target)

    x = torch.randn(32, 10)
    y = torch.randint(0, 3, (32,))
    trainer = hookline.Trainer(NamedInputs(), training_step=step, train_data=(x, y),
                               batch_size=8, epochs=1, verbose=0, device="cpu",
                               default_callbacks=False)
    with pytest.raises(ValueError, match="custom training step decides them.*example_input="):
        trainer.export("onnx", file=tmp_path / "early.onnx")
    assert trainer.export("pt", file=tmp_path / "early.pt").exists()  # needs no inputs
    trainer.fit()
    path = trainer.export("onnx", file=tmp_path / "late.onnx")
    assert [node.name for node in _session(path).get_inputs()] == ["image", "extra"]
