"""MLflowLogger (read back with MlflowClient) and WandbLogger (offline run files read back)."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from hookline import Callback, Trainer
from hookline.callbacks import CSVLogger, History, LambdaCallback
from hookline.loggers import MLflowLogger, PlotResults, WandbLogger
from hookline.testing import tiny_data, tiny_model


def _fit(callbacks, *, epochs=3, initial_epoch=0, save_dir=None, **options):
    trainer = Trainer(tiny_model(), loss="cross_entropy", train_data=tiny_data(32),
                      val_data=tiny_data(16, seed=1), epochs=epochs, batch_size=16, seed=7,
                      verbose=0, initial_epoch=initial_epoch, save_dir=save_dir,
                      callbacks=callbacks, **options)
    trainer.fit()
    return trainer


def _fit_validating_each_batch(logger):
    """Two epochs of two batches, validated after each: (step, val metrics) of each."""
    validated = []
    record = LambdaCallback(on_val_end=lambda v: validated.append((v.trainer.step, v.metrics)))
    trainer = _fit([record, logger], epochs=2, val_check_interval=1)
    assert [step for step, _ in validated] == [1, 2, 3, 4]  # 1 and 3 inside the epochs
    return trainer, validated


# --- MLflow ---------------------------------------------------------------------------------
pytestmark = pytest.mark.filterwarnings("ignore:.*noload.*:DeprecationWarning")

RUN_FILES = ("weights/best.pt", "results.csv", "results.png")


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory):
    """One SQLite store for the module: creating its tables takes a few seconds."""
    return "sqlite:///" + str(tmp_path_factory.mktemp("mlflow") / "mlflow.db")


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real ``mlflow server`` on a free port of 127.0.0.1 (SQLite behind it, artifacts
    proxied by the server), stopped after the module's tests."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    log = open(folder / "server.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
         "--artifacts-destination", str(folder / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("mlflow server did not start: "
                                     + (folder / "server.log").read_text()[-2000:])
            time.sleep(0.3)
        yield uri
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _client(uri):
    from mlflow.tracking import MlflowClient
    return MlflowClient(tracking_uri=uri)


def _add_loss_parts(trainer):
    """Metric names with a slash, as per-part losses are named, and values a callback adds
    as a numpy scalar or a 0-d tensor (every logger writes them as numbers)."""
    trainer.metrics["train/box_loss"] = 0.5 + trainer.epoch
    trainer.metrics["val/box_loss"] = 1.5 + trainer.epoch
    trainer.metrics["numpy_value"] = np.float32(0.25 + trainer.epoch)
    trainer.metrics["tensor_value"] = torch.tensor(0.75 + trainer.epoch)


ADDED_NUMBERS = {"numpy_value": [0.25, 1.25, 2.25], "tensor_value": [0.75, 1.75, 2.75]}


def _fit_with_run_files(logger, save_dir, epochs=3):
    return _fit([LambdaCallback(on_fit_epoch_end=_add_loss_parts), logger,
                 CSVLogger(save_dir / "results.csv"), PlotResults()],
                epochs=epochs, save_dir=save_dir)


def test_mlflow_logs_every_validation_of_a_val_check_interval_at_its_step(tracking_uri):
    """Lightning's global step: step/val_* at trainer.step for every validation, mid-epoch
    ones included; val_* stays one point an epoch, at the epoch."""
    logger = MLflowLogger("exp-val-steps", tracking_uri=tracking_uri)
    trainer, validated = _fit_validating_each_batch(logger)
    client = _client(tracking_uri)
    for name in ("loss", "accuracy"):
        points = sorted(client.get_metric_history(logger.run_id, f"step/val_{name}"),
                        key=lambda m: m.step)
        assert [m.step for m in points] == [step for step, _ in validated]
        assert [m.value for m in points] == \
            pytest.approx([metrics[name] for _, metrics in validated])
    points = sorted(client.get_metric_history(logger.run_id, "val_loss"), key=lambda m: m.step)
    assert [m.step for m in points] == [0, 1]
    assert [m.value for m in points] == \
        pytest.approx(trainer.callbacks.find(History)[0].history["val_loss"])


@pytest.mark.parametrize("store", ["sqlite", "file", "http"])
def test_mlflow_logs_params_metrics_and_run_files(store, tracking_uri, tmp_path, request):
    uri = {"sqlite": lambda: tracking_uri,
           "file": lambda: (tmp_path / "mlruns").as_uri(),
           "http": lambda: request.getfixturevalue("mlflow_server")}[store]()
    save_dir = tmp_path / "run"
    logger = MLflowLogger(f"exp-{store}", run_name="first", tracking_uri=uri,
                          artifact_location=None if store == "http"
                          else (tmp_path / "artifacts").as_uri(),
                          tags={"team": "hookline"})
    trainer = _fit_with_run_files(logger, save_dir)
    history = trainer.callbacks.find(History)[0].history
    client = _client(uri)
    run = client.get_run(logger.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "first"
    assert client.get_experiment(run.info.experiment_id).name == f"exp-{store}"
    assert run.data.tags["team"] == "hookline"
    assert run.data.params["epochs"] == "3" and run.data.params["seed"] == "7"
    assert run.data.params["batch_size"] == "16"
    for name in ("loss", "val_loss", "val_accuracy", "train/box_loss", "val/box_loss"):
        points = sorted(client.get_metric_history(logger.run_id, name), key=lambda m: m.step)
        assert [m.step for m in points] == [0, 1, 2]
        assert [m.value for m in points] == pytest.approx(history[name])
    for name, values in ADDED_NUMBERS.items():
        points = sorted(client.get_metric_history(logger.run_id, name), key=lambda m: m.step)
        assert [m.value for m in points] == pytest.approx(values)
    listed = {item.path for item in client.list_artifacts(logger.run_id)}
    listed |= {item.path for item in client.list_artifacts(logger.run_id, "weights")}
    assert set(RUN_FILES) <= listed
    download = tmp_path / "download"
    for name in RUN_FILES:
        copy = client.download_artifacts(logger.run_id, name, str(download))
        assert Path(copy).read_bytes() == (save_dir / name).read_bytes(), name
    assert logger.uploaded == {name: str(save_dir / name) for name in RUN_FILES}


def test_mlflow_resume_continues_the_same_run(tracking_uri):
    first = MLflowLogger("exp-b", tracking_uri=tracking_uri)
    _fit([first], epochs=2)
    resumed = MLflowLogger("exp-b", tracking_uri=tracking_uri)
    resumed.load_state_dict(first.state_dict())
    _fit([resumed], epochs=4, initial_epoch=2)
    assert resumed.run_id == first.run_id
    steps = [m.step for m in _client(tracking_uri).get_metric_history(first.run_id, "loss")]
    assert sorted(steps) == [0, 1, 2, 3]


def test_one_mlflow_logger_gives_each_new_fit_its_own_run(tracking_uri):
    """A logger instance used for two fits that are not resumes logs each into a run of its
    own (before, the second fit's metrics went into the first run, under its params); one
    given run_id= keeps logging there."""
    logger = MLflowLogger("exp-refit", tracking_uri=tracking_uri)
    ids = []
    for _ in range(2):
        _fit([logger], epochs=2)
        ids.append(logger.run_id)
    client = _client(tracking_uri)
    assert ids[0] != ids[1]
    for run_id in ids:
        assert sorted(m.step for m in client.get_metric_history(run_id, "loss")) == [0, 1]
    named = MLflowLogger("exp-refit", tracking_uri=tracking_uri, run_id=ids[0])
    _fit([named], epochs=1)
    assert named.run_id == ids[0]


def test_mlflow_marks_a_crashed_run_failed_and_keeps_its_files(tracking_uri, tmp_path):
    def crash(trainer):
        if trainer.epoch == 1:
            raise RuntimeError("boom")

    logger = MLflowLogger("exp-c", tracking_uri=tracking_uri,
                          artifact_location=(tmp_path / "artifacts").as_uri())
    with pytest.raises(RuntimeError, match="boom"):
        _fit([logger, LambdaCallback(on_train_epoch_end=crash)], save_dir=tmp_path)
    client = _client(tracking_uri)
    assert client.get_run(logger.run_id).info.status == "FAILED"
    # the best weights of epoch 0 were written before the crash: they are uploaded
    assert [item.path for item in client.list_artifacts(logger.run_id, "weights")] == \
        ["weights/best.pt"]


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"experiment_name": ""}, ValueError, "experiment_name"),
    ({"tags": ["a"]}, TypeError, "tags"),
])
def test_mlflow_bad_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        MLflowLogger(**kwargs)


# --- Weights & Biases (offline only) --------------------------------------------------------
def _wandb_records(path):
    """Records of a W&B run file: LevelDB's log format (32 KiB blocks of CRC, length and type
    headers) after W&B's 7-byte file header, each record a ``wandb_internal_pb2.Record``."""
    from wandb.proto import wandb_internal_pb2

    data, block, position, parts = path.read_bytes(), 32768, 7, []
    assert data[:4] == b":W&B"
    while position + 7 <= len(data):
        left = block - position % block
        if left < 7:
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        if length == 0 and kind == 0:  # the padding at the end of a block
            position += left
            continue
        parts.append(data[position + 7:position + 7 + length])
        position += 7 + length
        if kind in (1, 4):  # a full record, or the last part of a split one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(parts))
            parts = []
            yield record


def _finished_records(path, timeout=30.0):
    """The run file's records once W&B's service has written its final ``exit`` record:
    ``run.finish()`` can return before the service has flushed the file."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            records = list(_wandb_records(path))
        except Exception:  # noqa: BLE001 - a record still being written: read again
            records = []
        if any(record.WhichOneof("record_type") == "exit" for record in records):
            return records
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} got no exit record within {timeout} s")
        time.sleep(0.05)


def test_wandb_offline_run_holds_config_history_and_run_files(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))  # artifact staging
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    save_dir = tmp_path / "run"
    logger = WandbLogger("hookline-tests", name="tiny")
    trainer = _fit_with_run_files(logger, save_dir)
    assert logger.mode == "offline" and logger.run is None  # finished
    history = trainer.callbacks.find(History)[0].history
    [run_file] = (save_dir / "wandb").glob(f"offline-run-*-{logger.run_id}/run-*.wandb")
    rows, config, artifacts = [], {}, {}
    for record in _finished_records(run_file):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                         for item in record.history.item})
        elif kind == "run":
            config = {item.key: json.loads(item.value_json) for item in record.run.config.update}
        elif kind == "artifact":
            artifacts[record.artifact.name] = record.artifact
    rows.sort(key=lambda row: row["_step"])
    assert [row["epoch"] for row in rows] == [0, 1, 2]
    assert [row["_step"] for row in rows] == [0, 1, 2]
    for name in ("loss", "val_loss", "val_accuracy", "train/box_loss", "val/box_loss"):
        assert [row[name] for row in rows] == pytest.approx(history[name])
    for name, values in ADDED_NUMBERS.items():
        assert [row[name] for row in rows] == pytest.approx(values)
    assert config["epochs"] == 3 and config["seed"] == 7
    assert logger.state_dict() == {"run_id": logger.run_id}
    # the artifacts' manifests name each file with W&B's digest (base64 MD5) of its bytes
    expected = {f"{logger.run_id}-weights": ("model", {"best.pt": "weights/best.pt"}),
                f"{logger.run_id}-results": ("results", {"results.csv": "results.csv",
                                                         "results.png": "results.png"})}
    assert set(artifacts) == set(expected)
    for name, (kind, files) in expected.items():
        artifact = artifacts[name]
        assert artifact.type == kind
        contents = {entry.path: entry for entry in artifact.manifest.contents}
        assert set(contents) == set(files)
        for entry_name, relative in files.items():
            data = (save_dir / relative).read_bytes()
            digest = base64.b64encode(hashlib.md5(data).digest()).decode()
            assert contents[entry_name].digest == digest
            assert contents[entry_name].size == len(data)


def test_wandb_logs_a_val_check_interval_run_at_the_global_step(tmp_path, monkeypatch):
    """W&B's steps only go up: such a run is logged at trainer.step (Lightning's), each
    validation inside an epoch as its own row, the epoch's values at the epoch's last step."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = WandbLogger("hookline-tests", dir=tmp_path / "run", log_artifacts=False)
    trainer, validated = _fit_validating_each_batch(logger)
    [run_file] = (tmp_path / "run" / "wandb").glob(f"offline-run-*-{logger.run_id}/run-*.wandb")
    rows = sorted((
        {item.key or "/".join(item.nested_key): json.loads(item.value_json)
         for item in record.history.item}
        for record in _finished_records(run_file)
        if record.WhichOneof("record_type") == "history"), key=lambda row: row["_step"])
    assert [row["_step"] for row in rows] == [step for step, _ in validated]
    assert [row["epoch"] for row in rows] == [0, 0, 1, 1]
    assert [row["val_loss"] for row in rows] == \
        pytest.approx([metrics["loss"] for _, metrics in validated])
    assert ["loss" in row for row in rows] == [False, True, False, True]  # the epoch rows
    assert [row["loss"] for row in rows[1::2]] == \
        pytest.approx(trainer.callbacks.find(History)[0].history["loss"])


def test_one_wandb_logger_gives_each_new_fit_its_own_run(tmp_path, monkeypatch):
    """Two fits with one WandbLogger that are not resumes: two runs, two run folders."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = WandbLogger("hookline-tests", dir=str(tmp_path / "w"), log_artifacts=False)
    ids = []
    for _ in range(2):
        _fit([logger], epochs=1)
        ids.append(logger.run_id)
    assert ids[0] != ids[1]
    for run_id in ids:
        assert list((tmp_path / "w" / "wandb").glob(f"offline-run-*-{run_id}"))


def test_wandb_bad_options():
    with pytest.raises(ValueError, match="mode='cloud'"):
        WandbLogger(mode="cloud")
    with pytest.raises(ValueError, match="project"):
        WandbLogger(project="")


class RandomJitter(torch.utils.data.Dataset):
    """Per-sample noise from Python's global ``random``, as many augmentation libraries draw."""

    def __init__(self) -> None:
        self.x, self.y = tiny_data(32)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i] + random.uniform(-0.1, 0.1), self.y[i]


def test_mlflow_retries_never_draw_from_the_global_random_a_seeded_run_uses(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY",
                 "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    dead = f"http://127.0.0.1:{_free_port()}"  # nothing listens: every call is retried

    def fit(callbacks):
        trainer = Trainer(tiny_model(), loss="cross_entropy", epochs=2, seed=7, verbose=0,
                          train_data=torch.utils.data.DataLoader(RandomJitter(), batch_size=8),
                          callbacks=callbacks)
        trainer.fit()
        return trainer, random.getstate()

    plain, plain_random = fit([])
    with pytest.warns(RuntimeWarning, match="MLflowLogger"):  # the failed sends, reported
        logged, logged_random = fit([MLflowLogger("dead", tracking_uri=dead, timeout=5)])
    assert logged_random == plain_random  # the retries drew nothing from it
    for name, value in plain.model.state_dict().items():
        assert torch.equal(logged.model.state_dict()[name], value), name


def test_a_wandb_run_draws_nothing_from_the_global_random_a_seeded_run_uses(tmp_path,
                                                                            monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_SILENT", "true")

    def fit(callbacks, save_dir):
        trainer = Trainer(tiny_model(), loss="cross_entropy", epochs=2, seed=7, verbose=0,
                          train_data=torch.utils.data.DataLoader(RandomJitter(), batch_size=8),
                          save_dir=save_dir, callbacks=callbacks)
        trainer.fit()
        return trainer, random.getstate()

    plain, plain_random = fit([], tmp_path / "plain")
    logger = WandbLogger("hookline-tests", name="seeded")
    logged, logged_random = fit([logger], tmp_path / "logged")
    assert logger.run_id and logger.run is None  # a run was made, and finished
    assert logged_random == plain_random  # the service's start, run id and sends drew nothing
    for name, value in plain.model.state_dict().items():
        assert torch.equal(logged.model.state_dict()[name], value), name


class SlowTrackingServer:
    """A tracking server on 127.0.0.1 speaking the few MLflow REST calls a run makes, each
    answered after ``delay`` seconds; stopped when the test leaves it."""

    INFO: ClassVar[dict[str, object]] = {
        "run_id": "r1", "run_uuid": "r1", "experiment_id": "1", "status": "RUNNING",
        "start_time": 1, "artifact_uri": "", "lifecycle_stage": "active", "user_id": "u"}

    def __init__(self, delay: float) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        owner, self.calls = self, []
        self.released = threading.Event()  # set on leaving: every call is answered at once

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                path = self.path.split("?")[0]
                owner.calls.append(path.rsplit("/mlflow/", 1)[-1])
                owner.released.wait(delay)
                if path.endswith("experiments/get-by-name"):
                    out = {"experiment": {"experiment_id": "1", "name": "slow",
                                          "lifecycle_stage": "active"}}
                elif path.endswith("runs/create"):
                    out = {"run": {"info": owner.INFO, "data": {}}}
                elif path.endswith("runs/update"):
                    out = {"run_info": owner.INFO}
                else:
                    out = {}
                data = json.dumps(out).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass

            do_GET = do_POST = answer

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.uri = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        # a send the run gave up on is still in flight: answer it and the calls after it, so
        # its thread ends here rather than retrying against a closed port (drawing MLflow's
        # retry jitter from the global random) during the tests that follow
        self.released.set()
        for thread in threading.enumerate():
            if thread.name.startswith("hookline-MLflowLogger"):
                thread.join(timeout=30)
        self.httpd.shutdown()
        self.httpd.server_close()


class Stopwatch(Callback):
    def __init__(self, order, times):
        self.order, self.times = order, times

    def on_fit_epoch_end(self, trainer):
        self.times.append(time.perf_counter())


def test_a_slow_tracking_server_never_blocks_the_loop(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    before, after = [], []
    with SlowTrackingServer(delay=1.0) as server:
        logger = MLflowLogger("slow", tracking_uri=server.uri, timeout=3)
        trainer = Trainer(tiny_model(), loss="cross_entropy", train_data=tiny_data(32),
                          epochs=3, batch_size=16, seed=7, verbose=0,
                          callbacks=[Stopwatch(79, before), logger, Stopwatch(81, after)])
        started = time.perf_counter()
        trainer.fit()
        took = time.perf_counter() - started
    blocked = sum(end - start for start, end in zip(before, after, strict=True))
    assert blocked < 0.3, f"the loop waited {blocked:.2f} s for the tracking server"
    # every call got through in the background (each answered after 1 s), in order
    assert server.calls[:3] == ["experiments/get-by-name", "runs/create", "runs/log-batch"]
    assert server.calls.count("runs/log-batch") == 4 and server.calls[-1] == "runs/update"
    assert logger.run_id == "r1" and took < 3 * 8


def test_a_hung_tracking_server_holds_the_end_of_the_run_for_a_bounded_time(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with SlowTrackingServer(delay=20.0) as server:
        logger = MLflowLogger("hung", tracking_uri=server.uri, timeout=0.5)
        trainer = Trainer(tiny_model(), loss="cross_entropy", train_data=tiny_data(32),
                          epochs=2, batch_size=16, seed=7, verbose=0, callbacks=[logger])
        started = time.perf_counter()
        with pytest.warns(RuntimeWarning, match=r"MLflowLogger: \d+ send\(s\) still unfinished "
                                                r"at the end of the run after waiting 0.5 s"):
            trainer.fit()
        took = time.perf_counter() - started
    # queued: the run's creation, its params, two epochs' metrics and its end: 0.75 s each
    assert took < 5 * 0.75 + 1, f"fit took {took:.1f} s against a server that never answers"


def test_mlflow_from_the_command_line_gets_the_run_folders_files(tracking_uri, tmp_path):
    import numpy as np

    from hookline.cli import main

    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 1, 8, 8)).astype(np.float32)
    y = (x.reshape(48, -1).sum(axis=1) > 0).astype(np.int64)
    np.savez(tmp_path / "data.npz", x=x, y=y, x_val=x[:16], y_val=y[:16])
    run = tmp_path / "run"
    artifacts = (tmp_path / "artifacts").as_uri()
    loggers = (f"loggers=[{{class_path: MLflowLogger, init_args: {{experiment_name: cli, "
               f"tracking_uri: '{tracking_uri}', artifact_location: '{artifacts}'}}}}]")
    assert main(["train", f"data={tmp_path / 'data.npz'}", "epochs=2", "batch_size=16",
                 "verbose=0", f"save_dir={run}", loggers]) == 0
    client = _client(tracking_uri)
    [found] = client.search_runs([client.get_experiment_by_name("cli").experiment_id])
    assert found.data.params["epochs"] == "2" and found.info.status == "FINISHED"
    download = tmp_path / "download"
    for name in RUN_FILES:
        copy = client.download_artifacts(found.info.run_id, name, str(download))
        assert Path(copy).read_bytes() == (run / name).read_bytes(), name
