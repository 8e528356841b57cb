"""PlotResults: a ``results.png`` of the loss and metric curves when training ends."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from hookline.callback import Callback
from hookline.checkpoint import atomic_path
from hookline.loggers._optional import require
from hookline.plain_number import plain_number

__all__ = ["PlotResults"]

_COLUMNS = 3
_VAL_PREFIXES = ("val_", "val/")


def _base_name(name: str) -> str:
    """The panel of a metric: ``val_loss`` and ``loss`` share ``loss``; loss parts named
    ``train/box_loss`` and ``val/box_loss`` share ``box_loss``."""
    for prefix in (*_VAL_PREFIXES, "train/"):
        if name.startswith(prefix) and len(name) > len(prefix):
            return name[len(prefix):]
    return name


def _number(value: Any) -> float | None:
    number = plain_number(value)
    return None if number is None else float(number)


class PlotResults(Callback):
    """Plot every epoch's metrics, train against validation, at the end of training.

    Args:
        path: the PNG to write (default: ``save_dir/"results.png"``; a trainer without a
            save_dir needs a path).
        metrics: the names to plot, without the ``val_``, ``val/`` or ``train/`` prefix
            (default: every numeric metric seen).
        dpi: resolution of the image.

    One panel per metric: ``loss`` and ``val_loss`` share a panel (lines labelled with the
    metric names), as do ``accuracy`` and ``val_accuracy``, and loss parts named
    ``train/box_loss`` and ``val/box_loss`` (panel ``box_loss``); values other callbacks add (such
    as ``lr``) get their own. The x axis is the epoch counted from 1, as the progress bar
    shows it; an epoch without a value leaves a gap. The callback keeps its own record
    (restored by ``load_state_dict`` on resume), so it needs no History. Drawing uses
    matplotlib's Agg canvas directly (no pyplot, no global backend change) and the file is
    written atomically. After writing, ``plotted`` maps each panel's title to
    ``{line label: (x values, y values)}`` read back from the figure's lines.

    Example::

        from hookline.loggers import PlotResults
        Trainer(model, loss="cross_entropy", train_data=(x, y), val_data=(xv, yv), epochs=5,
                save_dir="runs/exp1", callbacks=[PlotResults()]).fit()  # runs/exp1/results.png
    """

    order = 85  # after the callbacks that add metrics and the loggers
    on_error = "warn"
    rank_zero_only = True  # in a distributed run one process writes (or prints)

    def __init__(self, path: str | os.PathLike | None = None, *,
                 metrics: Sequence[str] | None = None, dpi: int = 100) -> None:
        if metrics is not None and (isinstance(metrics, str)
                                    or not all(isinstance(m, str) for m in metrics)):
            raise TypeError(f"PlotResults(metrics=...) must be a list of metric names such as "
                            f"['loss', 'accuracy'], got {metrics!r}")
        if isinstance(dpi, bool) or not isinstance(dpi, int) or dpi < 10:
            raise ValueError(f"PlotResults(dpi=...) must be an integer >= 10, got {dpi!r}")
        self.path = Path(path) if path is not None else None
        self.metrics = list(metrics) if metrics is not None else None
        self.dpi = dpi
        self.epochs: list[int] = []
        self.values: dict[str, list[float | None]] = {}
        self.plotted: dict[str, dict[str, tuple[list[float], list[float]]]] = {}
        self.written: Path | None = None
        self._loaded = False

    def state_dict(self) -> dict[str, Any]:
        return {"epochs": list(self.epochs),
                "values": {name: list(values) for name, values in self.values.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epochs = list(state["epochs"])
        self.values = {name: list(values) for name, values in state["values"].items()}
        self._loaded = True

    def on_train_start(self, trainer: Any) -> None:
        if self._loaded:  # keep what was recorded before the checkpoint, drop what follows
            keep = [i for i, epoch in enumerate(self.epochs) if epoch < trainer.start_epoch]
            self.epochs = [self.epochs[i] for i in keep]
            self.values = {name: [values[i] for i in keep] for name, values in self.values.items()}
        else:
            self.epochs, self.values = [], {}
        self._loaded = False
        self._target(trainer)  # fail early, not after hours of training

    def on_fit_epoch_end(self, trainer: Any) -> None:
        done = len(self.epochs)
        self.epochs.append(trainer.epoch)
        for name, value in trainer.metrics.items():
            if _number(value) is not None:
                self.values.setdefault(name, [None] * done)
        for name, values in self.values.items():
            values.append(_number(trainer.metrics.get(name)))

    def on_train_end(self, trainer: Any) -> None:
        if self.epochs:
            self.written = self.plot(self._target(trainer))

    def _target(self, trainer: Any) -> Path:
        if self.path is not None:
            return self.path
        save_dir = getattr(trainer, "save_dir", None)
        if save_dir is None:
            raise ValueError("PlotResults has nowhere to write: pass PlotResults(path=...) or "
                             "give the trainer a save_dir")
        return Path(save_dir) / "results.png"

    def panels(self) -> dict[str, list[str]]:
        """Panel title -> the metric names drawn in it (train first, then validation)."""
        panels: dict[str, list[str]] = {}
        for name in self.values:
            base = _base_name(name)
            if self.metrics is None or base in self.metrics:
                panels.setdefault(base, []).append(name)
        for names in panels.values():
            names.sort(key=lambda name: name.startswith(_VAL_PREFIXES))
        return panels

    def plot(self, path: str | os.PathLike) -> Path:
        """Draw the recorded curves into ``path`` (a PNG) and return the path."""
        require("matplotlib", extra="plots", feature="PlotResults")
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        panels = self.panels()
        if not panels:
            raise ValueError(f"PlotResults: none of metrics={self.metrics} was logged; the "
                             f"logged metrics are {sorted(self.values)}")
        columns = min(len(panels), _COLUMNS)
        rows = math.ceil(len(panels) / columns)
        figure = Figure(figsize=(4.5 * columns, 3.2 * rows), dpi=self.dpi, layout="tight")
        FigureCanvasAgg(figure)
        x = [epoch + 1 for epoch in self.epochs]
        self.plotted = {}
        for index, (title, names) in enumerate(panels.items()):
            axes = figure.add_subplot(rows, columns, index + 1)
            for name in names:
                y = [math.nan if value is None else value for value in self.values[name]]
                axes.plot(x, y, marker="o", markersize=3, label=name)
            axes.set_title(title)
            axes.set_xlabel("epoch")
            axes.grid(alpha=0.3)
            axes.legend(fontsize="small")
            self.plotted[title] = {
                # get_xdata/get_ydata give back the lists of numbers plotted above
                str(line.get_label()): ([float(v) for v in cast("list[float]", line.get_xdata())],
                                        [float(v) for v in cast("list[float]", line.get_ydata())])
                for line in axes.get_lines()}
        target = Path(path)
        with atomic_path(target) as temporary:
            figure.savefig(temporary, format="png", dpi=self.dpi)
        return target
