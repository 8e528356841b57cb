"""WandbLogger: the run's options as config, every epoch's metrics and the run's files (best
weights, results.csv, results.png) as artifacts of a W&B run."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hookline.callback import Callback
from hookline.loggers._artifacts import run_files
from hookline.loggers._optional import require
from hookline.loggers._params import run_params
from hookline.loggers._val_steps import val_values, validates_mid_epoch
from hookline.plain_number import plain_number

__all__ = ["WandbLogger"]

_MODES = ("offline", "online", "disabled", "shared")


class WandbLogger(Callback):
    """Log a fit to Weights & Biases, offline unless told otherwise.

    Args:
        project: the W&B project.
        name: the run's display name (W&B makes one up when None).
        mode: "offline" (the default here, whatever ``WANDB_MODE`` says: nothing leaves the
            machine; upload later with ``wandb sync``), "online", "disabled" or "shared".
        dir: the folder holding W&B's ``wandb/`` run folders (default: the trainer's save_dir,
            else W&B's default, the working directory).
        entity, group, tags: passed to ``wandb.init``.
        log_params: put ``trainer.args`` into the run's config.
        log_artifacts: when the fit ends, log the run's files found under the trainer's
            save_dir as artifacts: ``weights/best.pt`` as a ``model`` artifact named
            ``<run id>-weights``, ``results.csv`` and ``results.png`` as a ``results``
            artifact named ``<run id>-results``.
        artifacts: more files to add to the results artifact.
        id: continue the run with this id (``resume="allow"``).

    Every epoch, ``{"epoch": epoch, **numeric metrics}`` is logged at ``step=epoch``
    (0-based); names may contain ``/`` (``train/box_loss``; W&B groups them into sections).
    With ``Trainer(val_check_interval=...)`` the run is logged at ``step=trainer.step``
    instead (Lightning's global step; W&B drops a step lower than the last), and each
    validation inside an epoch logs ``{"epoch", **val_*}`` there too.
    The artifacts are logged at ``teardown``, after every ``on_train_end`` (PlotResults draws
    results.png there), also after a failed fit; then the run is finished (exit code 1 when
    an exception ended the fit). The run id is part of ``state_dict()``, so a resumed fit
    continues the same run. ``on_error="warn"``: a failing tracker never ends a run.

    Example::

        from hookline.loggers import WandbLogger
        logger = WandbLogger("digits", name="mlp")  # offline: see ./wandb/offline-run-*
        Trainer(model, loss="cross_entropy", train_data=(x, y), callbacks=[logger]).fit()
    """

    order = 80  # after the callbacks that add metrics
    on_error = "warn"
    rank_zero_only = True  # in a distributed run one process writes (or prints)

    def __init__(self, project: str = "hookline", *, name: str | None = None,
                 mode: str | None = None, dir: str | os.PathLike | None = None,
                 entity: str | None = None, group: str | None = None,
                 tags: list[str] | None = None, log_params: bool = True,
                 log_artifacts: bool = True, artifacts: Sequence[str] = (),
                 id: str | None = None) -> None:  # wandb.init's names
        if mode is not None and mode not in _MODES:
            raise ValueError(f"WandbLogger(mode={mode!r}) must be one of {_MODES} or None "
                             f"(offline)")
        if not isinstance(project, str) or not project:
            raise ValueError(f"WandbLogger(project=...) must be a non-empty string, "
                             f"got {project!r}")
        self.project = project
        self.name = name
        self.mode = mode or "offline"
        self.dir = Path(dir) if dir is not None else None
        self.entity, self.group = entity, group
        self.tags = list(tags) if tags is not None else None
        self.log_params = log_params
        self.log_artifacts = log_artifacts
        self.artifacts = [str(path) for path in artifacts]
        self.uploaded: dict[str, str] = {}  # file name in its artifact -> local file
        self.run_id = self._given_run_id = id
        self._loaded = False  # a resume's run id, for the fit that is starting
        self.run: Any = None
        self._by_step = False  # this fit's x-axis: trainer.step (val_check_interval) or epoch

    @property
    def state_key(self) -> str:
        return f"WandbLogger[{self.project}]"

    def state_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id} if self.run_id else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.run_id = state.get("run_id") or self.run_id
        self._loaded = True

    def on_train_start(self, trainer: Any) -> None:
        self._finish(0)
        if not self._loaded:  # a new fit is a new run, unless id= named one
            self.run_id = self._given_run_id
        self._loaded = False
        self.uploaded = {}
        wandb = require("wandb", extra="wandb", feature="WandbLogger")
        folder = self.dir if self.dir is not None else getattr(trainer, "save_dir", None)
        if folder is not None:
            Path(folder).mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=self.project, name=self.name, mode=self.mode, entity=self.entity,
            group=self.group, tags=self.tags,
            dir=str(folder) if folder is not None else None,
            config=run_params(trainer.args) if self.log_params else None,
            id=self.run_id, resume="allow" if self.run_id else None)
        self.run_id = self.run.id
        self._by_step = validates_mid_epoch(trainer)

    def on_fit_epoch_end(self, trainer: Any) -> None:
        if self.run is None:
            return
        numbers = {name: plain_number(value) for name, value in trainer.metrics.items()}
        values = {name: number for name, number in numbers.items() if number is not None}
        step = trainer.step if self._by_step else trainer.epoch
        self.run.log({"epoch": trainer.epoch, **values}, step=step)

    def on_mid_epoch_val_end(self, trainer: Any) -> None:
        """A ``val_check_interval`` validation: its ``val_*`` at ``trainer.step``."""
        if self.run is None:
            return
        self.run.log({"epoch": trainer.epoch, **val_values(trainer)}, step=trainer.step)

    def teardown(self, engine: Any) -> None:
        if self.run is None:
            return
        try:
            if self.log_artifacts:
                self._upload(engine)
        finally:
            self._finish(0 if getattr(engine, "exception", None) is None else 1)

    def _upload(self, trainer: Any) -> None:
        wandb = require("wandb", extra="wandb", feature="WandbLogger")
        files = run_files(trainer, self.artifacts)
        safe_id = re.sub(r"[^A-Za-z0-9_.-]", "-", str(self.run_id))
        groups = {"model": {n: p for n, p in files.items() if n.startswith("weights/")},
                  "results": {n: p for n, p in files.items() if not n.startswith("weights/")}}
        for kind, members in groups.items():
            if not members:
                continue
            suffix = "weights" if kind == "model" else "results"
            artifact = wandb.Artifact(f"{safe_id}-{suffix}", type=kind)
            for name, path in members.items():
                artifact.add_file(str(path), name=Path(name).name)
                self.uploaded[Path(name).name] = str(path)
            self.run.log_artifact(artifact)

    def _finish(self, exit_code: int) -> None:
        if self.run is not None:
            run, self.run = self.run, None
            run.finish(exit_code=exit_code)
