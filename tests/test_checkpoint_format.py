"""The full-checkpoint format: contents, version and checksum, clear errors for bad files,
atomic writes that survive a full disk, and the background writer."""

from __future__ import annotations

import errno
import io
import json
import os
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import hookline
from hookline.callbacks import BackupAndRestore
from hookline.checkpoint import (
    FORMAT_VERSION,
    MAGIC,
    CheckpointMismatchError,
    CheckpointVersionError,
    CheckpointWriteError,
    CheckpointWriter,
    CorruptCheckpointError,
    build_checkpoint,
    load_checkpoint,
    load_weights,
    read_checkpoint_info,
    save_weights,
    verify_checkpoint,
    write_checkpoint,
)
from hookline.files import checkpoint_writer
from hookline.resume import restore
from hookline.testing import tiny_data, tiny_model


class Counter(hookline.Callback):
    """A stateful callback whose key includes its configuration."""

    def __init__(self, name: str) -> None:
        self.name, self.count = name, 0

    @property
    def state_key(self) -> str:
        return f"Counter[{self.name}]"

    def on_train_batch_end(self, trainer: Any) -> None:
        self.count += 1 if self.name == "one" else 10

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = state["count"]


def make_trainer(callbacks: list[Any] = (), epochs: int = 1, model: Any = None,
                 **options: Any) -> hookline.Trainer:
    x, y = tiny_data(32)
    return hookline.Trainer(model or tiny_model(), loss="cross_entropy", train_data=(x, y),
                            epochs=epochs, batch_size=8, seed=3, callbacks=list(callbacks),
                            verbose=0, device="cpu", **options)


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    trainer = make_trainer()
    trainer.fit()
    return write_checkpoint(build_checkpoint(trainer), tmp_path / "run.ckpt")


def test_a_checkpoint_holds_everything_a_run_needs(tmp_path: Path) -> None:
    trainer = make_trainer([Counter("one")])
    scheduler = torch.optim.lr_scheduler.StepLR(trainer.optimizer, step_size=1)
    trainer.lr_schedulers.append(scheduler)
    trainer.add_callback("on_train_epoch_end", lambda t: scheduler.step())
    trainer.fit()
    path = write_checkpoint(build_checkpoint(trainer), tmp_path / "run.ckpt")
    payload = load_checkpoint(path)
    assert set(payload) >= {"model", "optimizer", "lr_schedulers", "scaler", "rng", "run",
                            "data", "callbacks", "version"}
    assert payload["version"] == FORMAT_VERSION
    assert payload["optimizer"]["state"]  # Adam moments, not just hyper-parameters
    assert payload["lr_schedulers"][0]["last_epoch"] == 1
    assert set(payload["rng"]) == {"python", "numpy", "torch", "cuda"}
    assert payload["run"]["epoch"] == 0 and payload["run"]["step"] == 4
    assert payload["run"]["phase"] == "epoch_done" and payload["run"]["batches_done"] == 4
    assert payload["data"] == {"kind": "arrays", "size": 32, "batch_size": 8, "shuffle": True,
                               "seed": 3, "drop_last": False, "world": 1}
    assert payload["callbacks"]["Counter[one]"] == {"count": 4}
    assert payload["callbacks"]["History"]["epoch"] == [0]
    header = read_checkpoint_info(path)
    assert header["version"] == FORMAT_VERSION and len(header["sha256"]) == 64
    assert path.read_bytes().startswith(MAGIC)


def test_two_instances_of_one_class_keep_separate_state() -> None:
    trainer = make_trainer([Counter("one"), Counter("ten")])
    trainer.fit()
    states = build_checkpoint(trainer)["callbacks"]
    assert states["Counter[one]"] == {"count": 4} and states["Counter[ten]"] == {"count": 40}
    # registered in the other order, each instance still gets its own state back
    ten, one = Counter("ten"), Counter("one")
    make_trainer([ten, one]).callbacks.load_state_dict(states)
    assert (one.count, ten.count) == (4, 40)


# verify_checkpoint checks what load_checkpoint checks before unpickling, streaming the body
READERS = [load_checkpoint, verify_checkpoint]


@pytest.mark.parametrize("read", READERS)
def test_a_truncated_file_is_named_as_truncated(saved: Path, read: Any) -> None:
    data = saved.read_bytes()
    saved.write_bytes(data[:len(data) - 100])
    with pytest.raises(CorruptCheckpointError, match=rf"{saved}.*is truncated.*bytes"):
        read(saved)


@pytest.mark.parametrize("read", READERS)
def test_bytes_after_the_announced_end_are_reported(saved: Path, read: Any) -> None:
    saved.write_bytes(saved.read_bytes() + b"x")
    with pytest.raises(CorruptCheckpointError, match=rf"{saved} has bytes after its announced"):
        read(saved)


def test_random_bytes_are_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "noise.ckpt"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(CorruptCheckpointError, match=rf"{path} is not a hookline checkpoint"):
        load_checkpoint(path)
    path.write_bytes(b"")
    with pytest.raises(CorruptCheckpointError, match="is empty"):
        load_checkpoint(path)


@pytest.mark.parametrize("read", READERS)
def test_a_negative_size_in_the_header_is_a_damaged_header(saved: Path, read: Any) -> None:
    data = saved.read_bytes()
    line_end = data.index(b"\n", len(MAGIC))
    header = json.loads(data[len(MAGIC):line_end])
    header["size"] = -1
    saved.write_bytes(MAGIC + json.dumps(header).encode() + data[line_end:])
    with pytest.raises(CorruptCheckpointError, match=rf"{saved} has a damaged header"):
        read(saved)


@pytest.mark.parametrize("read", READERS)
def test_a_damaged_byte_fails_the_checksum(saved: Path, read: Any) -> None:
    assert verify_checkpoint(saved) == read_checkpoint_info(saved)  # intact: the header back
    data = bytearray(saved.read_bytes())
    data[-50] ^= 0xFF
    saved.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError, match=rf"{saved} is corrupt.*SHA-256"):
        read(saved)


def test_a_newer_format_version_asks_for_an_upgrade(saved: Path) -> None:
    data = saved.read_bytes()
    header_end = data.index(b"\n", len(MAGIC)) + 1
    header = json.loads(data[len(MAGIC):header_end])
    header["version"] = FORMAT_VERSION + 1
    saved.write_bytes(MAGIC + json.dumps(header).encode() + b"\n" + data[header_end:])
    with pytest.raises(CheckpointVersionError,
                       match=rf"{saved} has format version {FORMAT_VERSION + 1}.*upgrade"):
        load_checkpoint(saved)


def test_another_models_checkpoint_lists_the_mismatched_keys(saved: Path) -> None:
    wider = make_trainer(model=tiny_model(hidden=32))
    with pytest.raises(CheckpointMismatchError) as caught:
        restore(wider, load_checkpoint(saved), source=saved)
    message = str(caught.value)
    assert str(saved) in message
    assert "0.weight (checkpoint (16, 8), model (32, 8))" in message
    assert "2.weight" in message and "0.bias" in message


def test_a_weights_file_is_told_apart_from_a_full_checkpoint(tmp_path: Path) -> None:
    path = save_weights(tiny_model(), tmp_path / "weights.pt")
    with pytest.raises(CorruptCheckpointError, match="plain torch.save file.*load_weights"):
        load_checkpoint(path)
    assert set(load_weights(path)) == {"model"}


def _truncated_torch_save(legacy: bool) -> bytes:
    buffer = io.BytesIO()
    torch.save({"model": tiny_model().state_dict()}, buffer,
               _use_new_zipfile_serialization=not legacy)
    return buffer.getvalue()[:30]


@pytest.mark.parametrize("content", [
    b"hello world\n", b"just some notes\n", b"0123\n", b"", b"{\"lr\": 0.1}\n",
    _truncated_torch_save(legacy=False), _truncated_torch_save(legacy=True),
    b"\x80\x02hello world"])
@pytest.mark.parametrize("trusted", [False, True])
def test_a_file_that_is_not_a_weights_file_is_reported_as_such(
        tmp_path: Path, content: bytes, trusted: bool) -> None:
    """A text file named .pt reached torch's unpickler and came back as a raw KeyError, or as
    an 'unsafe objects' refusal advising trusted=True."""
    path = tmp_path / "best.pt"
    path.write_bytes(content)
    with pytest.raises(CorruptCheckpointError, match=rf"{path} could not be read as a weights "
                                                     rf"file \(.*\); it is truncated or not a "
                                                     rf"torch.save file"):
        load_weights(path, trusted=trusted)


def test_a_model_file_given_as_weights_names_load_model(tmp_path: Path) -> None:
    model = hookline.Model(torch.nn.Linear(8, 3), loss="mse")
    path = model.save(tmp_path / "net.pt", config={"in_features": 8, "out_features": 3})
    with pytest.raises(CorruptCheckpointError, match=rf"{path} is a model file \(Model.save\), "
                                                     rf"not a weights file; load it with "
                                                     rf"hookline.load_model"):
        load_weights(path)


@pytest.mark.parametrize("background", [True, False])
def test_a_weights_file_that_would_need_full_unpickling_is_refused_when_saving(
        tmp_path: Path, background: bool) -> None:
    extra = {"metrics": {"loss": np.float64(0.5)}}  # a numpy scalar needs full unpickling
    with pytest.raises(TypeError, match=r"weights file\['metrics'\]\['loss'\] is a "
                                        r"numpy.float64.*float\(x\)"):
        CheckpointWriter(background=background).save_weights(tiny_model(), tmp_path / "w.pt",
                                                             extra)
    with pytest.raises(TypeError, match=r"weights file\['metrics'\]\['loss'\]"):
        save_weights(tiny_model(), tmp_path / "w.pt", extra)
    assert not list(tmp_path.iterdir())  # nothing written, not even a temporary file


def test_state_that_would_need_full_unpickling_is_refused_when_saving(tmp_path: Path) -> None:
    class Careless(hookline.Callback):
        def on_train_epoch_end(self, trainer: Any) -> None:
            pass

        def state_dict(self) -> dict[str, Any]:
            return {"where": Path("somewhere")}

    trainer = make_trainer([Careless()])
    trainer.fit()
    with pytest.raises(TypeError, match=r"checkpoint\['callbacks'\]\['[\w.<>]*Careless'\]"
                                        r"\['where'\] is a pathlib.*PosixPath.*str\(path\)"):
        write_checkpoint(build_checkpoint(trainer), tmp_path / "run.ckpt")
    assert not list(tmp_path.iterdir())  # nothing written, not even a temporary file


def enospc_after(monkeypatch: pytest.MonkeyPatch, name: str, calls: int = 0) -> list[int]:
    """Make os.<name> fail with ENOSPC after ``calls`` successful calls."""
    real = getattr(os, name)
    seen = [0]

    def failing(*args: Any) -> Any:
        seen[0] += 1
        if seen[0] > calls:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args)
    monkeypatch.setattr(os, name, failing)
    return seen


@pytest.mark.parametrize(("failing", "calls"), [("write", 1), ("replace", 0)])
def test_a_full_disk_keeps_the_previous_checkpoint(tmp_path: Path, saved: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   failing: str, calls: int) -> None:
    before = saved.read_bytes()
    trainer = make_trainer(epochs=2)
    trainer.fit()
    enospc_after(monkeypatch, failing, calls=calls)  # e.g. the magic line gets out, then full
    with pytest.raises(OSError, match="No space left"):
        write_checkpoint(build_checkpoint(trainer), saved)
    monkeypatch.undo()
    assert saved.read_bytes() == before
    assert load_checkpoint(saved)["run"]["epoch"] == 0
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]  # the temp file is gone


def test_a_background_write_error_surfaces_at_the_next_save(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = make_trainer()
    trainer.fit()
    writer = CheckpointWriter()
    writer.save(build_checkpoint(trainer), tmp_path / "a.ckpt")
    writer.wait()
    enospc_after(monkeypatch, "write")
    writer.save(build_checkpoint(trainer), tmp_path / "a.ckpt")  # returns: the write is queued
    with pytest.raises(CheckpointWriteError, match=r"a\.ckpt could not be written.*No space "
                                                   r"left.*previous checkpoint is intact"):
        writer.save(build_checkpoint(trainer), tmp_path / "a.ckpt")
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "a.ckpt")["run"]["step"] == 4


def test_the_writer_writes_in_another_thread_one_write_at_a_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = make_trainer()
    trainer.fit()
    real_write = os.write
    active, worst, threads = [0], [0], set()
    lock = threading.Lock()
    disk_free = threading.Event()  # writes wait until the test opens it

    def slow_write(fd: int, data: Any) -> int:
        with lock:
            active[0] += 1
            worst[0] = max(worst[0], active[0])
        threads.add(threading.current_thread().name)
        disk_free.wait(30)
        time.sleep(0.001)
        try:
            return real_write(fd, data)
        finally:
            with lock:
                active[0] -= 1
    monkeypatch.setattr(os, "write", slow_write)
    first, second = CheckpointWriter(), CheckpointWriter()
    first.save(build_checkpoint(trainer), tmp_path / "same.ckpt")
    assert first.busy  # save returned while its write waits for the disk: the loop did not
    disk_free.set()
    for _ in range(3):  # two writers, one file: writes queue up, never overlap
        first.save(build_checkpoint(trainer), tmp_path / "same.ckpt")
        second.save(build_checkpoint(trainer), tmp_path / "same.ckpt")
    first.wait()
    second.wait()
    assert worst[0] == 1
    assert threads and all(name.startswith("hookline-checkpoint-writer") for name in threads)
    load_checkpoint(tmp_path / "same.ckpt")


# where a background save serialises: "loop" below SERIALIZE_IN_LOOP_BYTES, "thread" above
SERIALIZE_IN = {"loop": 2**40, "thread": -1}


@pytest.mark.parametrize("serialized_in", sorted(SERIALIZE_IN))
@pytest.mark.parametrize("kind", ["full", "weights"])
def test_the_writer_saves_the_state_of_the_moment_save_was_called(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, serialized_in: str) -> None:
    monkeypatch.setattr(checkpoint_writer, "SERIALIZE_IN_LOOP_BYTES", SERIALIZE_IN[serialized_in])
    trainer = make_trainer()
    trainer.fit()
    model = trainer.model
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    real_write = os.write

    def slow_write(fd: int, data: Any) -> int:
        time.sleep(0.05)  # the write is still in flight when training moves on
        return real_write(fd, data)
    monkeypatch.setattr(os, "write", slow_write)
    writer = CheckpointWriter()
    path = tmp_path / "moment.ckpt"
    if kind == "full":
        writer.save(build_checkpoint(trainer), path)
    else:
        writer.save_weights(model, path, {"epoch": 0})
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)  # what the next training steps would do
    writer.close()
    saved = load_checkpoint(path)["model"] if kind == "full" else load_weights(path)["model"]
    for name, tensor in before.items():
        assert torch.equal(saved[name], tensor), name


@pytest.mark.parametrize("serialized_in", sorted(SERIALIZE_IN))
def test_tied_weights_stay_one_tensor_in_a_background_save(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, serialized_in: str) -> None:
    monkeypatch.setattr(checkpoint_writer, "SERIALIZE_IN_LOOP_BYTES", SERIALIZE_IN[serialized_in])
    model = torch.nn.Sequential(torch.nn.Embedding(5, 4), torch.nn.Linear(4, 5, bias=False))
    model[1].weight = model[0].weight  # tied, as in a language model's head
    writer = CheckpointWriter()
    writer.save_weights(model, tmp_path / "tied.pt")
    writer.close()
    saved = load_weights(tmp_path / "tied.pt")["model"]
    assert torch.equal(saved["0.weight"], model[0].weight.detach())
    assert saved["0.weight"].data_ptr() == saved["1.weight"].data_ptr()
    fresh = torch.nn.Sequential(torch.nn.Embedding(5, 4), torch.nn.Linear(4, 5, bias=False))
    fresh.load_state_dict(saved)  # the state_dict's metadata came through the copy
    assert torch.equal(fresh[1].weight, model[1].weight)


@pytest.mark.parametrize("serialized_in", sorted(SERIALIZE_IN))
def test_a_background_save_keeps_sparse_tensors(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, serialized_in: str) -> None:
    monkeypatch.setattr(checkpoint_writer, "SERIALIZE_IN_LOOP_BYTES", SERIALIZE_IN[serialized_in])
    sparse = torch.eye(4).to_sparse()  # an nn.Embedding(sparse=True) gradient is one
    writer = CheckpointWriter()
    writer.save_weights(torch.nn.Linear(2, 2), tmp_path / "sparse.pt", {"grad": sparse})
    writer.close()
    assert torch.equal(load_weights(tmp_path / "sparse.pt")["grad"].to_dense(), torch.eye(4))


@pytest.mark.parametrize("serialized_in", sorted(SERIALIZE_IN))
def test_a_payload_torch_save_refuses_is_reported_by_the_on_error_policy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, serialized_in: str) -> None:
    monkeypatch.setattr(checkpoint_writer, "SERIALIZE_IN_LOOP_BYTES", SERIALIZE_IN[serialized_in])
    class Local(torch.Tensor):  # passes the weights-only check, but pickle cannot name it
        pass
    writer = CheckpointWriter(on_error="warn")
    writer.save_weights(torch.nn.Linear(2, 2), tmp_path / "bad.pt",
                        {"odd": torch.zeros(1).as_subclass(Local)})
    with pytest.warns(RuntimeWarning, match="could not be written.*training continues"):
        writer.close()  # the loop was not stopped, whichever thread serialised
    assert not (tmp_path / "bad.pt").exists()


@pytest.mark.parametrize(("width", "serialized_in"), [(8, "loop"), (600, "thread")])
def test_a_small_model_is_serialised_in_the_loop_and_a_large_one_in_the_thread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, width: int, serialized_in: str) -> None:
    model = torch.nn.Linear(width, width)  # 600: 1.4 MB, over SERIALIZE_IN_LOOP_BYTES (1 MB)
    real_save = torch.save
    serialisers = []

    def recording_save(*args: Any, **kwargs: Any) -> None:
        serialisers.append(threading.current_thread())
        real_save(*args, **kwargs)
    monkeypatch.setattr(torch, "save", recording_save)
    writer = CheckpointWriter()
    writer.save_weights(model, tmp_path / "model.pt")
    writer.close()
    in_loop = serialisers == [threading.current_thread()]
    assert in_loop == (serialized_in == "loop"), serialisers
    assert torch.equal(load_weights(tmp_path / "model.pt")["model"]["weight"], model.weight)


def test_the_writer_keeps_one_thread_for_all_its_saves_until_closed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = make_trainer()
    trainer.fit()
    real_write = os.write
    writers = []

    def recording_write(fd: int, data: Any) -> int:
        writers.append(threading.current_thread())
        return real_write(fd, data)
    monkeypatch.setattr(os, "write", recording_write)
    writer = CheckpointWriter()
    for i in range(4):
        writer.save(build_checkpoint(trainer), tmp_path / f"{i}.ckpt")
    writer.close()
    assert len(writers) >= 4 and len({id(thread) for thread in writers}) == 1
    assert writers[0] is not threading.current_thread() and not writers[0].is_alive()
    writer.save(build_checkpoint(trainer), tmp_path / "after-close.ckpt")  # starts a new one
    writer.close()
    assert load_checkpoint(tmp_path / "after-close.ckpt")


@pytest.mark.parametrize("policy", ["raise", "warn"])
def test_training_stops_or_continues_on_a_full_disk_by_policy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: str) -> None:
    backup = BackupAndRestore(tmp_path / "backup", delete_checkpoint=False,
                              on_write_error=policy, background=False)
    trainer = make_trainer([backup], epochs=4)
    trainer.add_callback("on_train_epoch_start",
                         lambda t: t.epoch == 2 and enospc_after(monkeypatch, "write"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if policy == "raise":
            with pytest.raises(CheckpointWriteError, match="could not be written"):
                trainer.fit()
            assert trainer.epoch == 2  # stopped at the first save after the failed write
        else:
            trainer.fit()
            assert trainer.epoch == 3
            assert any("training continues" in str(w.message) for w in caught)
    monkeypatch.undo()
    assert load_checkpoint(backup.latest)["run"]["epoch"] == 1  # the last good backup


def test_each_backup_keeps_the_one_before(tmp_path: Path) -> None:
    backup = BackupAndRestore(tmp_path, delete_checkpoint=False)
    make_trainer([backup], epochs=3).fit()
    assert load_checkpoint(backup.latest)["run"]["epoch"] == 2
    assert load_checkpoint(backup.previous)["run"]["epoch"] == 1


def test_load_weights_reads_a_full_checkpoints_model(saved: Path) -> None:
    state = load_weights(saved)["model"]
    assert set(state) == set(tiny_model().state_dict())
