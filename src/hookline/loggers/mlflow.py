"""MLflowLogger: the run's options as params, every epoch's metrics and the run's files
(best weights, results.csv, results.png) in an MLflow run."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hookline.background_sender import BackgroundSender
from hookline.callback import Callback
from hookline.loggers._artifacts import run_files
from hookline.loggers._optional import require
from hookline.loggers._params import run_params
from hookline.loggers._val_steps import at_step
from hookline.plain_number import plain_number

__all__ = ["MLflowLogger"]

_MAX_PARAM_CHARS = 6000  # MLflow rejects longer param values


class MLflowLogger(Callback):
    """Log a fit to MLflow through ``mlflow.tracking.MlflowClient`` (no global active run).

    Args:
        experiment_name: the experiment, created when missing.
        run_name: the run's name (MLflow makes one up when None).
        tracking_uri: where runs are stored: ``"sqlite:///mlflow.db"``, a folder
            (``"file:./mlruns"`` or a plain path) or a tracking server
            (``"http://127.0.0.1:5000"``); default: MLflow's own (``MLFLOW_TRACKING_URI``,
            else ``sqlite:///mlflow.db`` in MLflow 3). MLflow 3 refuses folder stores unless
            ``MLFLOW_ALLOW_FILE_STORE`` is set; for a folder URI this logger sets it to
            ``true`` when it is unset, since you asked for that store by name.
        artifact_location: where a new experiment keeps its files (default: MLflow's: next
            to a folder store, ``./mlruns`` for a database, the server's own for a server).
        tags: tags set on a new run.
        log_params: log ``trainer.args`` (epochs, batch_size, lr, seed...) as params when the
            run is created.
        log_artifacts: when the fit ends, upload the run's files found under the trainer's
            save_dir: ``weights/best.pt``, ``results.csv`` and ``results.png``.
        artifacts: more files to upload then (each under its file name).
        run_id: continue an existing run instead of creating one.
        timeout: at the end of the run, the most it waits for each call still queued, in
            seconds (default 10).

    Every call to the tracker (creating the run, logging, uploading, ending it) runs in a
    background thread, in order: training never waits for a slow or unreachable tracking
    server. When the fit ends it waits for the calls still queued, at most ``timeout``
    seconds for each, then gives up on the rest with a warning. Inside that thread MLflow's
    own HTTP timeout and retries apply (``MLFLOW_HTTP_REQUEST_TIMEOUT``,
    ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``); their random jitter is off
    (``MLFLOW_HTTP_REQUEST_BACKOFF_JITTER`` defaults to 0 here) because it draws from Python's
    global ``random``, which a seeded data pipeline draws from too. A checkpoint written
    before the run is created on the server holds no ``run_id``.

    Every epoch, each numeric value of ``trainer.metrics`` is logged with ``step=epoch``
    (0-based); names may contain ``/`` (``train/box_loss``). With
    ``Trainer(val_check_interval=...)`` every validation (inside the epoch and at its end) is
    also logged as ``step/val_*`` with ``step=trainer.step``. The files are uploaded at
    ``teardown``, after every ``on_train_end`` (PlotResults draws results.png there), and
    also after a failed fit (what exists by then). The run then ends ``FINISHED``, or
    ``FAILED`` when an exception ended the fit (``KILLED`` on Ctrl-C). ``run_id`` is part of
    ``state_dict()``, so a resumed fit logs into the same run. ``on_error="warn"``: a failing
    tracker never ends a run.

    Example::

        from hookline.loggers import MLflowLogger
        logger = MLflowLogger("digits", run_name="mlp", tracking_uri="sqlite:///mlflow.db")
        Trainer(model, loss="cross_entropy", train_data=(x, y), callbacks=[logger]).fit()
        logger.run_id  # open it in `mlflow ui --backend-store-uri sqlite:///mlflow.db`
    """

    order = 80  # after the callbacks that add metrics
    on_error = "warn"
    rank_zero_only = True  # in a distributed run one process writes (or prints)

    def __init__(self, experiment_name: str = "hookline", *, run_name: str | None = None,
                 tracking_uri: str | None = None, artifact_location: str | None = None,
                 tags: dict[str, str] | None = None, log_params: bool = True,
                 log_artifacts: bool = True, artifacts: Sequence[str] = (),
                 run_id: str | None = None, timeout: float = 10.0) -> None:
        if not isinstance(experiment_name, str) or not experiment_name:
            raise ValueError(f"MLflowLogger(experiment_name=...) must be a non-empty string, "
                             f"got {experiment_name!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or \
                not timeout > 0:
            raise ValueError(f"MLflowLogger(timeout={timeout!r}) must be a positive number of "
                             f"seconds")
        if tags is not None and not isinstance(tags, dict):
            raise TypeError(f"MLflowLogger(tags=...) must be a dict of strings, got {tags!r}")
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.tracking_uri = tracking_uri
        self.artifact_location = artifact_location
        self.log_artifacts = log_artifacts
        self.artifacts = [str(path) for path in artifacts]
        self.uploaded: dict[str, str] = {}  # artifact path -> local file, after a fit
        self.tags = {str(key): str(value) for key, value in (tags or {}).items()}
        self.log_params = log_params
        self.run_id = self._given_run_id = run_id
        self._loaded = False  # a resume's run id, for the fit that is starting
        self.client: Any = None
        self._active = False
        self._sender = BackgroundSender("MLflowLogger", float(timeout))

    @property
    def state_key(self) -> str:
        return f"MLflowLogger[{self.experiment_name}]"

    def state_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id} if self.run_id else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.run_id = state.get("run_id") or self.run_id
        self._loaded = True

    def on_train_start(self, trainer: Any) -> None:
        if not self._loaded:  # a new fit is a new run, unless run_id= named one
            self.run_id = self._given_run_id
        self._loaded = False
        tracking = require("mlflow.tracking", extra="mlflow", feature="MLflowLogger")
        if _is_folder_store(self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        # MLflow's retry jitter draws from Python's global `random` in the sender's thread,
        # in the middle of the data pipeline's own draws: a flaky server would then change a
        # seeded run and make a resume inexact
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")
        self.uploaded = {}
        self.client = tracking.MlflowClient(tracking_uri=self.tracking_uri)
        params = run_params(trainer.args) if self.log_params else None
        self._active = True
        self._sender.submit(lambda: self._open_run(params))

    def _open_run(self, params: dict[str, Any] | None) -> None:  # in the sender's thread
        client = self.client
        if self.run_id is not None:
            client.update_run(self.run_id, status="RUNNING")
            return
        experiment = client.get_experiment_by_name(self.experiment_name)
        experiment_id = experiment.experiment_id if experiment is not None \
            else client.create_experiment(self.experiment_name,
                                          artifact_location=self.artifact_location)
        run = client.create_run(experiment_id, run_name=self.run_name, tags=self.tags)
        self.run_id = run.info.run_id
        if params is not None:
            self._log_params(params)

    def _log_params(self, values: dict[str, Any]) -> None:
        from mlflow.entities import Param
        params = [Param(name, str(value)[:_MAX_PARAM_CHARS]) for name, value in values.items()]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 params a batch
            self.client.log_batch(self.run_id, params=params[start:start + 100])

    def on_fit_epoch_end(self, trainer: Any) -> None:
        if not self._active:
            return
        from mlflow.entities import Metric
        now = int(time.time() * 1000)
        numbers = {name: plain_number(value) for name, value in trainer.metrics.items()}
        metrics = [Metric(name, float(number), now, trainer.epoch)
                   for name, number in numbers.items() if number is not None]
        metrics += self._at_step(trainer, now)
        if metrics:
            self._sender.submit(lambda: self._log_metrics(metrics))

    def on_mid_epoch_val_end(self, trainer: Any) -> None:
        """A ``val_check_interval`` validation, as ``step/val_*`` at ``trainer.step``."""
        if not self._active:
            return
        metrics = self._at_step(trainer, int(time.time() * 1000))
        if metrics:
            self._sender.submit(lambda: self._log_metrics(metrics))

    @staticmethod
    def _at_step(trainer: Any, now: int) -> list[Any]:
        from mlflow.entities import Metric
        return [Metric(name, value, now, trainer.step)
                for name, value in at_step(trainer).items()]

    def _log_metrics(self, metrics: list[Any]) -> None:  # in the sender's thread
        if self.run_id is not None:  # else the run could not be created: that error is raised
            self.client.log_batch(self.run_id, metrics=metrics)

    def teardown(self, engine: Any) -> None:
        if not self._active:
            self._sender.finish()
            return
        files = run_files(engine, self.artifacts) if self.log_artifacts else {}
        error = getattr(engine, "exception", None)
        status = "FINISHED" if error is None else (
            "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
        try:
            if files:
                self._sender.submit(lambda: self._upload(files))
        finally:
            self._end(status)

    def _upload(self, files: dict[str, Any]) -> None:  # in the sender's thread
        if self.run_id is None:
            return
        for name, path in files.items():
            folder = str(Path(name).parent.as_posix())
            self.client.log_artifact(self.run_id, str(path),
                                     artifact_path=None if folder == "." else folder)
            self.uploaded[name] = str(path)

    def _end(self, status: str) -> None:
        try:
            if self._active:
                self._active = False
                self._sender.submit(lambda: self._terminate(status))
        finally:  # an earlier call's error raised by submit: still wait for the queue
            self._sender.finish()

    def _terminate(self, status: str) -> None:  # in the sender's thread
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, status=status)


def _is_folder_store(uri: str | None) -> bool:
    """A ``file:`` URI or a plain path: MLflow's folder ("file store") backend."""
    if not uri:
        return False
    return uri.startswith("file:") or "://" not in uri and not uri.startswith(
        ("databricks", "sqlite:", "postgresql", "mysql", "mssql", "http"))
