"""The Predictor: inference as a stream of per-batch results callbacks can read and replace."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hookline.boxes import Boxes, boxes_rows
from hookline.data import as_batches, move_to
from hookline.engine.base import Engine, autocast, place_model, resolve_device, resolve_precision
from hookline.engine.schedule import batch_limit, check_limit
from hookline.engine.steps import resolve_step
from hookline.module_modes import ModuleModes
from hookline.structure import Prediction, prediction_of, unpack_batch

__all__ = ["Predictor", "Result"]


class Result:
    """The prediction for one sample: the raw ``output`` row, and for class scores ``probs``,
    ``cls`` (the arg-max class) and ``conf`` (its probability). A detection result has
    ``boxes`` (``hookline.boxes.Boxes``: ``xyxy``, ``xywh``, ``cls``, ``conf``), filled when
    the predict step returns ``{"boxes": [...]}`` or by a postprocess / an
    ``on_predict_postprocess_end`` callback that sets it."""

    __slots__ = ("boxes", "index", "output")

    def __init__(self, index: int, output: Any, boxes: Boxes | None = None) -> None:
        self.index, self.output, self.boxes = index, output, boxes

    @property
    def probs(self) -> torch.Tensor:
        """Softmax of the output (class probabilities)."""
        return torch.softmax(self._scores().float(), dim=-1)

    @property
    def cls(self) -> int:
        """The most probable class."""
        return int(self._scores().argmax(dim=-1))

    def _scores(self) -> torch.Tensor:
        if not isinstance(self.output, torch.Tensor):
            raise TypeError(f"result {self.index} holds no class scores (output is "
                            f"{type(self.output).__name__}); a detection result's classes are "
                            f"result.boxes.cls")
        return self.output

    @property
    def conf(self) -> float:
        """The probability of the most probable class."""
        return float(self.probs.max())

    def __repr__(self) -> str:
        if self.boxes is not None:
            return f"Result(index={self.index}, boxes={len(self.boxes)})"
        shape = tuple(self.output.shape) if isinstance(self.output, torch.Tensor) else None
        return f"Result(index={self.index}, output={shape})"


def _to_results(preds: Any, first_index: int) -> list[Result]:
    """The default postprocess: one Result per row of the prediction, or per image's boxes."""
    if isinstance(preds, list) and preds and isinstance(preds[0], Boxes):
        return [Result(first_index + i, None, boxes) for i, boxes in enumerate(preds)]
    rows = preds.detach().cpu()
    return [Result(first_index + i, row) for i, row in enumerate(rows)]


def _count(preds: Any) -> int:
    """Samples in a batch's prediction (one for a scalar or an unsized object)."""
    if isinstance(preds, torch.Tensor):
        return len(preds) if preds.dim() else 1
    try:
        return len(preds)
    except TypeError:
        return 1


_NO_SAVE_DIR = ("predicting with save=True needs save_dir=, the folder predictions.csv is "
                "written to (Trainer.predict takes the trainer's save_dir)")


class Predictor(Engine):
    """Run a model over inputs batch by batch.

    ``predictor(source)`` returns a list of results; ``stream=True`` yields them as batches
    finish. Callbacks see ``batch``, ``batch_i``, ``preds``, ``results`` (and may replace
    ``results``, e.g. with ``zip(results, frames)``) and ``args.save``, which they may toggle per
    batch: when true and ``save_dir`` is set, that batch's results are appended to
    ``save_dir/predictions.csv``.

    ``step=fn`` replaces the default predict step (``model(inputs)``) with ``fn(predictor,
    batch)``; a model declaring ``predict_step(batch)`` is used the same way. ``outputs`` is
    what the step returned, ``preds`` the prediction chosen from it (``prediction=``, see
    ``hookline.structure``), which ``postprocess(preds, first_index)`` turns into results.
    """

    def __init__(self, model: nn.Module, *, callbacks: Any = (), device: str | torch.device = "auto",
                 precision: str = "32", batch_size: int = 32, save: bool = False,
                 save_dir: str | Path | None = None,
                 postprocess: Callable[[Any, int], Any] | None = None,
                 step: Callable[..., Any] | None = None, prediction: Prediction = None,
                 target_key: str | None = None,
                 limit_batches: float | None = None) -> None:
        if limit_batches is not None:  # 0 would return nothing, silently
            check_limit("limit_batches", limit_batches)
        super().__init__(callbacks)
        self.model = model
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision)
        self.postprocess = postprocess or _to_results
        self.args.batch_size = batch_size
        self.args.save = save
        self.args.save_dir = Path(save_dir) if save_dir is not None else None
        if save and save_dir is None:
            raise ValueError(_NO_SAVE_DIR)
        self.batch: Any = None
        self.batch_i = 0
        self.outputs: Any = None
        self.preds: Any = None
        self.args.prediction = prediction
        self.args.target_key = target_key
        self.args.limit_batches = limit_batches
        self._given_step = step
        self.results: Any = []
        self.saved = 0

    def __call__(self, source: Any, *, stream: bool = False) -> Any:
        """Predict on ``source`` (arrays, a DataLoader or an iterable of batches)."""
        if stream:
            return self._stream(source)
        return self._run_top_level(lambda: list(self._run(source)))

    predict = __call__

    def _stream(self, source: Any) -> Iterator[Any]:
        with self._top_level_scope():
            yield from self._run(source)

    def _run(self, source: Any) -> Iterator[Any]:
        batches = as_batches(source, name="predict source", batch_size=self.args.batch_size)
        if batches is None:
            raise ValueError("nothing to predict: pass arrays, a DataLoader or batches")
        model, device, fire = self.model, self.device, self.callbacks.fire
        step, _ = resolve_step(self, "predict_step", self._given_step, Predictor)
        choice = self.args.prediction
        limit = batch_limit(self.args.limit_batches, batches, "limit_predict_batches")
        amp = autocast(device, self.precision)
        self.saved = 0
        place_model(model, device)
        modes = ModuleModes(model)
        model.eval()
        fire("on_predict_start", self)
        index = 0
        try:
            for batch_i, batch in enumerate(batches.epoch(0)):
                if limit is not None and batch_i >= limit:
                    break
                self.batch_i, self.batch = batch_i, batch
                fire("on_predict_batch_start", self)
                if device.type != "cpu":
                    batch = move_to(batch, device)
                with torch.no_grad(), amp:
                    self.outputs = output = step(batch)
                preds: Any
                if type(output) is torch.Tensor:
                    preds = output
                elif choice is None and isinstance(output, dict) and "boxes" in output:
                    preds = boxes_rows(output["boxes"])  # a detector's step (hookline.boxes)
                else:
                    preds = prediction_of(output, choice)
                self.preds = preds
                self.results = self.postprocess(preds, index)
                # a postprocess's list says how many samples it read (preds may be a dict)
                index += len(self.results) if isinstance(self.results, list) else _count(preds)
                fire("on_predict_postprocess_end", self)
                if self.args.save and self.args.save_dir is not None:
                    self._save(self.results)  # a callback may turn save on for any predict
                fire("on_predict_batch_end", self)
                yield from self.results
        finally:
            modes.restore()
        fire("on_predict_end", self)

    def predict_step(self, batch: Any) -> Any:
        """The default predict step: the model's output for the batch's inputs (a target in
        the batch is left out, by the batch rules of ``hookline.structure``)."""
        args, kwargs, _, _ = unpack_batch(batch, target_key=self.args.target_key)
        return self.model(*args, **kwargs)

    def _save(self, results: Any) -> None:
        path = self.args.save_dir / "predictions.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists()
        with open(path, "a", newline="") as file:
            writer = csv.writer(file)
            for item in results:
                result = item[0] if isinstance(item, tuple) else item
                if new:  # a detector's file has one row per box
                    writer.writerow(["index", "cls", "conf"] + (
                        ["x1", "y1", "x2", "y2"] if result.boxes is not None else []))
                    new = False
                if result.boxes is None:
                    writer.writerow([result.index, result.cls, f"{result.conf:.6f}"])
                for box in result.boxes or ():
                    writer.writerow([result.index, int(box.cls[0]), f"{float(box.conf[0]):.6f}",
                                     *(f"{float(v):.2f}" for v in box.xyxy[0])])
                self.saved += 1
