"""Named loss parts reach every logger: History, CSV, TensorBoard (read back with its
EventAccumulator), MLflow (MlflowClient), W&B offline (its run file), plots, the console."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from test_mlflow_wandb import _finished_records
from test_tensorboard import _read

import hookline
from hookline.callbacks import CSVLogger, ProgressBar
from hookline.loggers import MLflowLogger, PlotResults, TensorBoard, WandbLogger
from hookline.testing import tiny_data, tiny_model

pytestmark = pytest.mark.filterwarnings("ignore:.*noload.*:DeprecationWarning")
PARTS = ("train/ce", "train/l2", "val/ce", "val/l2")


def step(engine: Any, batch: Any) -> dict[str, torch.Tensor]:
    x, y = batch
    logits = engine.model(x)
    return {"ce": torch.nn.functional.cross_entropy(logits, y),
            "l2": 1e-2 * logits.pow(2).mean()}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[hookline.Trainer, Path, Any]:
    out = tmp_path_factory.mktemp("parts")
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("WANDB_DIR", str(out))
    mp.setenv("WANDB_SILENT", "true")
    console = io.StringIO()
    mlflow = MLflowLogger("parts", tracking_uri="sqlite:///" + str(out / "mlflow.db"))
    # dir= given: a second W&B run in one process kept the first one's WANDB_DIR (seen when
    # test_mlflow_wandb.py ran first in the same worker), so the env var alone is not enough
    wandb = WandbLogger("hookline-tests", name="parts", dir=out)
    plots = PlotResults(out / "results.png")
    trainer = hookline.Trainer(
        tiny_model(), training_step=step, validation_step=step, train_data=tiny_data(32),
        val_data=tiny_data(16, seed=1), batch_size=8, epochs=3, seed=0, device="cpu",
        verbose=0, callbacks=[CSVLogger(out / "log.csv"),
                              TensorBoard(out / "tb", log_every_n_steps=4), mlflow, wandb,
                              plots, ProgressBar(verbose=2, file=console)])
    trainer.fit()
    mp.undo()
    return trainer, out, (mlflow, wandb, plots, console)


def test_history_and_csv_have_a_column_per_part(run: Any) -> None:
    trainer, out, _ = run
    history = trainer.callbacks.find(hookline.History)[0].history
    assert set(PARTS) <= set(history) and len(history["train/ce"]) == 3
    with open(out / "log.csv") as file:
        rows = list(csv.DictReader(file))
    assert [float(row["val/l2"]) for row in rows] == pytest.approx(history["val/l2"])


def test_tensorboard_has_every_part_per_epoch_and_per_logged_step(run: Any) -> None:
    trainer, out, _ = run
    history = trainer.callbacks.find(hookline.History)[0].history
    events = _read(out / "tb")
    for name in PARTS:
        logged = events.Scalars(f"epoch/{name}")
        assert [event.value for event in logged] == pytest.approx(history[name], rel=1e-6)
    assert [event.step for event in events.Scalars("step/ce")] == [4, 8, 12]


def test_mlflow_and_wandb_hold_every_part(run: Any) -> None:
    from mlflow.tracking import MlflowClient
    trainer, out, (mlflow, wandb, _, _) = run
    history = trainer.callbacks.find(hookline.History)[0].history
    client = MlflowClient(tracking_uri="sqlite:///" + str(out / "mlflow.db"))
    for name in PARTS:
        points = sorted(client.get_metric_history(mlflow.run_id, name), key=lambda m: m.step)
        assert [m.value for m in points] == pytest.approx(history[name])
    deadline = time.monotonic() + 30  # W&B's service process writes the run file
    while not list((out / "wandb").glob(f"offline-run-*-{wandb.run_id}/run-*.wandb")) and \
            time.monotonic() < deadline:
        time.sleep(0.1)
    [run_file] = (out / "wandb").glob(f"offline-run-*-{wandb.run_id}/run-*.wandb")
    rows = [{item.key or "/".join(item.nested_key): json.loads(item.value_json)
             for item in record.history.item} for record in _finished_records(run_file)
            if record.WhichOneof("record_type") == "history"]
    for name in PARTS:
        assert [row[name] for row in rows] == pytest.approx(history[name])


def test_plots_pair_each_part_with_its_validation_curve_and_the_console_shows_them(
        run: Any) -> None:
    _, _, (_, _, plots, console) = run
    assert set(plots.plotted["ce"]) == {"train/ce", "val/ce"}
    assert set(plots.plotted["l2"]) == {"train/l2", "val/l2"}
    last = console.getvalue().strip().splitlines()[-1]
    assert all(f"{name}: " in last for name in PARTS), last
