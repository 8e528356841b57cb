"""Model.save / hookline.load_model and the safetensors weights files of the Keras door."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import hookline
from hookline.architecture import ArchitectureError
from hookline.checkpoint import (
    CheckpointMismatchError,
    CheckpointVersionError,
    CorruptCheckpointError,
    UnsafeCheckpointError,
    build_checkpoint,
    load_checkpoint,
    write_checkpoint,
)
from hookline.saving import MODEL_MAGIC
from hookline.testing import tiny_data, tiny_model

HERE = Path(__file__).resolve().parent


@hookline.serializable
def make_mlp(hidden=16, classes=3):
    return nn.Sequential(nn.Linear(8, hidden), nn.ReLU(), nn.Linear(hidden, classes))


class ConfigNet(nn.Module):
    """Keras' convention: get_config() returns the constructor's arguments."""

    def __init__(self, hidden=16, dropout=0.0):
        super().__init__()
        self.hidden, self.p = hidden, dropout
        self.body = nn.Sequential(nn.Linear(8, hidden), nn.Dropout(dropout), nn.ReLU(),
                                  nn.Linear(hidden, 3))

    def forward(self, x):
        return self.body(x)

    def get_config(self):
        return {"hidden": self.hidden, "dropout": self.p}


@hookline.serializable
class RecordedNet(nn.Module):
    def __init__(self, hidden, *, scale=1.0):
        super().__init__()
        self.scale = scale
        self.fc = nn.Linear(8, hidden)
        self.out = nn.Linear(hidden, 3)

    def forward(self, x):
        return self.out(torch.relu(self.fc(x))) * self.scale


class NeedsArguments(nn.Module):
    def __init__(self, hidden, activation="relu"):
        super().__init__()
        self.fc = nn.Linear(8, hidden)

    def forward(self, x):
        return self.fc(x)


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(4, 4, bias=False)
        self.head = nn.Linear(4, 4, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, x):
        return self.head(self.embed(x))


def fitted(module, **compile_options):
    x, y = tiny_data(samples=32)
    options = {"optimizer": "sgd", "loss": "cross_entropy", "metrics": ["accuracy"], "lr": 0.05,
               "device": "cpu"}
    options.update(compile_options)
    model = hookline.Model(module, **options)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    return model, x


def write_model_file(path, payload):
    """A model file with a valid header around any payload (as an attacker could write)."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getvalue()
    header = {"version": 1, "size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    path.write_bytes(MODEL_MAGIC + json.dumps(header).encode() + b"\n" + body)
    return path


# --- round trips -----------------------------------------------------------------------------
def test_save_and_load_in_a_fresh_process_gives_the_same_model(tmp_path):
    model, x = fitted(make_mlp(hidden=12))
    path = model.save(tmp_path / "net.hookline")
    np.save(tmp_path / "x.npy", x.numpy())
    np.save(tmp_path / "expected.npy", model.predict(x))
    script = f"""
import sys, numpy as np, hookline
sys.path.insert(0, {str(HERE)!r})
model = hookline.load_model({str(path)!r}, device="cpu")
x = np.load({str(tmp_path / "x.npy")!r})
assert np.array_equal(model.predict(x), np.load({str(tmp_path / "expected.npy")!r}))
print(model.module[0].out_features, model._optimizer_spec, model.lr, model.loss, model.metrics)
model.fit(x, np.zeros(len(x), dtype=np.int64), epochs=1, verbose=0)  # ready to train
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["12", "sgd", "0.05", "cross_entropy", "['accuracy']"]


def test_get_config_class_round_trip_keeps_every_argument(tmp_path):
    model, x = fitted(ConfigNet(hidden=10, dropout=0.25))
    loaded = hookline.load_model(model.save(tmp_path / "net.hookline"), device="cpu")
    assert isinstance(loaded.module, ConfigNet)
    assert loaded.module.get_config() == {"hidden": 10, "dropout": 0.25}
    assert np.array_equal(loaded.predict(x), model.predict(x))
    # the file keeps one training sample, so the loaded model's summary has shapes
    assert loaded.summary(print_fn=None).layers[0].output_shape == "[1, 3]"
    again = hookline.load_model(loaded.save(tmp_path / "again.hookline"), device="cpu")
    assert again.module.get_config() == {"hidden": 10, "dropout": 0.25}


def test_serializable_class_records_its_constructor_arguments(tmp_path):
    model, x = fitted(RecordedNet(7, scale=2.0))
    loaded = hookline.load_model(model.save(tmp_path / "net.hookline"), device="cpu")
    assert loaded.module.fc.out_features == 7 and loaded.module.scale == 2.0
    assert np.array_equal(loaded.predict(x), model.predict(x))


def test_explicit_config_for_a_class_without_a_record(tmp_path):
    model, x = fitted(NeedsArguments(5))
    loaded = hookline.load_model(model.save(tmp_path / "n.hookline", config={"hidden": 5}),
                                 device="cpu")
    assert loaded.module.fc.out_features == 5
    assert np.array_equal(loaded.predict(x), model.predict(x))
    with pytest.raises(ArchitectureError, match=r"does not rebuild this model \(shape "
                                                r"mismatch: fc.weight \(\(6, 8\) rebuilt"):
        model.save(tmp_path / "wrong.hookline", config={"hidden": 6})


def test_compile_false_and_unrecorded_settings(tmp_path):
    model, _ = fitted(make_mlp(), loss=nn.CrossEntropyLoss(label_smoothing=0.1))
    path = model.save(tmp_path / "net.hookline")
    with pytest.warns(UserWarning, match=r"does not hold loss CrossEntropyLoss\(\).*"
                                         r"model.compile"):
        loaded = hookline.load_model(path, device="cpu")
    assert loaded.loss is None
    assert hookline.load_model(path, compile=False, device="cpu").loss is None


@pytest.mark.parametrize("build", [
    lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True,
                                   weight_decay=5e-4),
    lambda params: torch.optim.Adam(params, lr=0.01, betas=(0.8, 0.95), weight_decay=1e-3,
                                    amsgrad=True),
    lambda params: torch.optim.NAdam(params, lr=0.02, betas=(0.85, 0.99),
                                     momentum_decay=3e-3),  # a class the Trainer has no name for
], ids=["sgd", "adam", "nadam"])
def test_an_optimizer_instance_is_rebuilt_with_its_hyperparameters(tmp_path, build):
    x, y = tiny_data(samples=32)
    module = make_mlp()
    model = hookline.Model(module, optimizer=build(module.parameters()), loss="cross_entropy",
                           device="cpu")
    path = model.save(tmp_path / "net.hookline")
    torch.load(io.BytesIO(path.read_bytes().split(b"\n", 2)[2]), weights_only=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is dropped, so nothing is warned
        loaded = hookline.load_model(path, device="cpu")
    # the loaded model trains as the one it was saved from does, step for step
    reference = make_mlp()
    reference.load_state_dict(module.state_dict())
    expected = hookline.Model(reference, optimizer=build(reference.parameters()),
                              loss="cross_entropy", device="cpu")
    for each in (loaded, expected):
        each.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    assert settings(loaded) == settings(expected)
    for name, tensor in expected.module.state_dict().items():
        assert torch.equal(loaded.module.state_dict()[name], tensor), name
    again = hookline.load_model(loaded.save(tmp_path / "again.hookline"), device="cpu")
    assert settings(again) == settings(expected)  # a loaded model saves them again


def settings(model):
    """The first param group's hyperparameters, without its parameters."""
    return {key: value for key, value in model.optimizer.param_groups[0].items()
            if key != "params"}


def test_per_group_optimizer_settings_are_named_when_loading(tmp_path):
    module = make_mlp()
    optimizer = torch.optim.SGD([{"params": module[0].parameters(), "weight_decay": 0.1},
                                 {"params": module[2].parameters()}], lr=0.05, momentum=0.9)
    path = hookline.Model(module, optimizer=optimizer, loss="cross_entropy",
                          device="cpu").save(tmp_path / "net.hookline")
    with pytest.warns(UserWarning, match=r"does not hold optimizer SGD's per-group "
                                         r"weight_decay \(its 2 param groups differ"):
        loaded = hookline.load_model(path, device="cpu")
    assert loaded.optimizer.param_groups[0]["momentum"] == 0.9


# --- what cannot be recorded ---------------------------------------------------------------
def test_unrecordable_architectures_raise_with_the_fix(tmp_path):
    with pytest.raises(ArchitectureError, match=r"Sequential was built: its constructor takes "
                                                r"\(\*args\).*@hookline.serializable factory"):
        hookline.Model(tiny_model(), loss="mse").save(tmp_path / "a.hookline")
    with pytest.raises(ArchitectureError, match=r"NeedsArguments was built: its constructor "
                                                r"takes \(hidden, activation='relu'\).*"
                                                r"config="):
        hookline.Model(NeedsArguments(4), loss="mse").save(tmp_path / "b.hookline")

    class Local(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(ArchitectureError, match="defined inside a function"):
        hookline.Model(Local(), loss="mse").save(tmp_path / "c.hookline")
    with pytest.raises(ArchitectureError, match=r"config\['hidden'\] is a ReLU.*plain data"):
        hookline.Model(NeedsArguments(4), loss="mse").save(tmp_path / "d.hookline",
                                                           config={"hidden": nn.ReLU()})
    assert not list(tmp_path.iterdir())  # nothing half-written


# --- safe loading --------------------------------------------------------------------------
def test_a_file_naming_an_arbitrary_function_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = write_model_file(tmp_path / "evil.hookline", {
        "format": "hookline.model", "version": 1, "weights": {},
        "architecture": {"target": "os:system", "config": {"command": f"touch {marker}"}}})
    with pytest.raises(ArchitectureError, match=r"refused to build os:system.*neither an "
                                                r"nn.Module class nor a @hookline.serializable"):
        hookline.load_model(path)
    assert not marker.exists()


def test_a_file_with_a_code_running_pickle_is_refused(tmp_path):
    path = write_model_file(tmp_path / "evil.hookline", {"format": "hookline.model",
                                                         "payload": ConfigNet()})
    with pytest.raises(UnsafeCheckpointError, match="weights-only unpickling does not allow"):
        hookline.load_model(path)


def test_damaged_truncated_and_foreign_files_are_named(tmp_path):
    model, _ = fitted(make_mlp())
    path = model.save(tmp_path / "net.hookline")
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    (tmp_path / "damaged").write_bytes(bytes(data))
    (tmp_path / "short").write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CorruptCheckpointError, match="does not match the SHA-256"):
        hookline.load_model(tmp_path / "damaged")
    with pytest.raises(CorruptCheckpointError, match="is truncated"):
        hookline.load_model(tmp_path / "short")
    # the checks a full checkpoint's reader makes (hookline/files/framed.py), each named
    (tmp_path / "longer").write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(CorruptCheckpointError, match=r"model file .*longer has bytes after"):
        hookline.load_model(tmp_path / "longer")
    magic, header, body = path.read_bytes().split(b"\n", 2)
    newer = json.loads(header) | {"version": 99}
    (tmp_path / "newer").write_bytes(b"\n".join([magic, json.dumps(newer).encode(), body]))
    with pytest.raises(CheckpointVersionError, match=r"format version 99.*upgrade hookline"):
        hookline.load_model(tmp_path / "newer")
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(CorruptCheckpointError, match=r"model file .*empty is empty"):
        hookline.load_model(tmp_path / "empty")
    trainer = hookline.Trainer(make_mlp(), loss="cross_entropy", train_data=tiny_data(8),
                               verbose=0, device="cpu")
    write_checkpoint(build_checkpoint(trainer), tmp_path / "run.ckpt")
    with pytest.raises(CorruptCheckpointError, match=r"is a training checkpoint.*"
                                                     r"Trainer\(resume=path\)"):
        hookline.load_model(tmp_path / "run.ckpt")


def test_weights_that_do_not_fit_the_rebuilt_class_name_the_tensor(tmp_path):
    path = write_model_file(tmp_path / "m.hookline", {
        "format": "hookline.model", "version": 1,
        "architecture": {"target": "test_model_saving:make_mlp", "config": {"hidden": 4}},
        "weights": make_mlp(hidden=5).state_dict()})
    with pytest.raises(CheckpointMismatchError, match=r"shape mismatch: 0.weight \(file "
                                                      r"\(5, 8\), model \(4, 8\)\)"):
        hookline.load_model(path)


# --- safetensors weights -------------------------------------------------------------------
def test_save_weights_load_weights_round_trip_in_safetensors(tmp_path):
    from safetensors.torch import load_file

    model, x = fitted(make_mlp())
    path = model.save_weights(tmp_path / "w.safetensors")
    assert torch.equal(load_file(str(path))["0.weight"], model.module[0].weight.detach())
    other = hookline.Model(make_mlp(), loss="cross_entropy", device="cpu")
    assert not np.array_equal(other.predict(x), model.predict(x))
    other.load_weights(path)
    assert np.array_equal(other.predict(x), model.predict(x))


def test_load_weights_shape_mismatch_names_the_tensor(tmp_path):
    model, _ = fitted(make_mlp())
    path = model.save_weights(tmp_path / "w.safetensors")
    other = hookline.Model(make_mlp(classes=4), loss="cross_entropy")
    with pytest.raises(CheckpointMismatchError, match=r"tensor '2.weight' has shape \(3, 16\) "
                                                      r"in the file but \(4, 16\) in the model"):
        other.load_weights(path)
    torch.save({"model": {}}, tmp_path / "w.pt")
    with pytest.raises(CorruptCheckpointError, match="is a torch.save weights file, not a "
                                                     "safetensors file"):
        other.load_weights(tmp_path / "w.pt")


def test_tied_weights_are_written_once_and_stay_tied_values(tmp_path):
    source = hookline.Model(Tied(), loss="mse")
    path = source.save_weights(tmp_path / "tied.safetensors")
    target = Tied()
    with torch.no_grad():
        target.embed.weight.zero_()
    hookline.Model(target, loss="mse").load_weights(path)
    assert torch.equal(target.head.weight, source.module.embed.weight)
    assert target.head.weight is target.embed.weight


def test_a_model_file_is_no_resume_candidate_and_the_checkpoint_reader_says_what_it_is(tmp_path):
    x, y = tiny_data(samples=8)
    folder = tmp_path / "ckpt"
    folder.mkdir()
    hookline.Model(make_mlp(), loss="cross_entropy").save(folder / "model.pt")
    with pytest.raises(CorruptCheckpointError, match=r"is a model file \(Model.save\).*"
                                                     r"hookline.load_model"):
        load_checkpoint(folder / "model.pt")
    trainer = hookline.Trainer(make_mlp(), loss="cross_entropy", train_data=(x, y),
                               verbose=0, device="cpu", save_dir=folder, resume=True)
    with pytest.warns(RuntimeWarning, match="resume=True found no checkpoint"):
        trainer.fit()  # the model file is not taken for a checkpoint to resume from
    assert not trainer.resumed
