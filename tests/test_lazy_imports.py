"""Importing hookline, its callbacks and its loggers loads none of the optional libraries."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ["tensorboard", "mlflow", "wandb", "onnx", "onnxruntime", "matplotlib", "safetensors",
         "tqdm", "rich", "optuna", "jsonargparse", "mkdocs"]

# torch itself imports tqdm (torch.hub does, when it is installed): what `import torch` loads
# is the baseline, and hookline must add nothing to it. Importing rich at the end shows that
# the check does see a library loaded after torch.
SCRIPT = f"""
import json, sys
heavy = {HEAVY!r}
def loaded():
    return {{name.split(".")[0] for name in sys.modules}} & set(heavy)
import torch
baseline = loaded()
import hookline, hookline.callbacks, hookline.loggers, hookline.cli
from hookline.callbacks import *
from hookline.loggers import MLflowLogger, PlotResults, TensorBoard, WandbLogger
# building the callbacks must not load their libraries either: that waits for a run
built = [MLflowLogger(), PlotResults("x.png"), TensorBoard(), WandbLogger(), ProgressBar(),
         CSVLogger("x.csv"), RemoteMonitor(), Timer(5), DeviceStatsMonitor()]
added = loaded() - baseline
import rich.progress
print(json.dumps({{"baseline": sorted(baseline), "added": sorted(added),
                  "control": sorted(loaded() - baseline)}}))
"""


def test_optional_libraries_stay_unloaded_until_a_run_needs_them(tmp_path):
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["added"] == []
    assert set(report["baseline"]) <= {"tqdm"}  # only what torch brings along
    assert report["control"] == ["rich"]  # the check sees a library loaded after torch


def test_unknown_logger_names_get_a_clear_error():
    import hookline.loggers

    with pytest.raises(AttributeError, match=r"Tensorboard.*the loggers are .*'TensorBoard'"):
        hookline.loggers.Tensorboard  # noqa: B018 - a typo on purpose
