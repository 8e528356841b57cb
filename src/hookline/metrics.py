"""Losses and metrics by name, and a metric accumulator that stays on the device until read.

A metric is any callable ``fn(preds, targets) -> scalar tensor`` (or a Python or numpy number,
as one written with numpy returns; named by its ``__name__``), a torchmetrics metric (anything
with ``update``/``compute``/``reset``), or one of the names below.
Batch values are averaged weighted by batch size; nothing is copied to the host until
``compute()``, which runs once per epoch. A torchmetrics result that is not one number is
logged entry by entry: a ``MetricCollection``'s dict one value per key (named by its keys), a
1-d tensor (a per-class metric, ``average=None``) as ``name_0``, ``name_1``, ...; any other
result (a matrix, a curve's tuple) is refused at the first batch, naming the metric.

``"accuracy"`` follows the loss, as in Keras. With a binary cross entropy given by name it is
the binary accuracy: each output is thresholded, at 0.5 for ``"binary_crossentropy"`` (alias
``"bce"``, which takes probabilities) and at 0 for ``"bce_with_logits"``, and compared with its
target element-wise, so each label of a multi-label target (N, C) counts. With any other loss,
a loss given as a callable included, it is the arg-max class, or for one output the logit
thresholded at 0; a one-hot or probability target (floats shaped as the predictions, as
``"categorical_crossentropy"`` takes) counts by its arg-max class, Keras' categorical accuracy. ``"binary_accuracy"`` is Keras' binary accuracy (threshold 0.5) with any
loss, for a loss module such as ``nn.BCELoss()``; ``metrics="auto"`` is the accuracy of a
classification loss, the binary one for a binary cross entropy by name.
"""

from __future__ import annotations

import copy
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from hookline.plain_number import as_python

__all__ = ["MetricSet", "accuracy", "mean_absolute_error", "mean_squared_error", "resolve_loss",
           "resolve_metrics"]


def accuracy(preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Share of samples whose arg-max class (or thresholded logit, for one output) is right;
    one-hot or probability targets are read by their arg-max (Keras' categorical accuracy).

    ``metrics=["accuracy"]`` with a binary cross entropy given by name is the binary accuracy
    instead (see ``resolve_metrics``)."""
    return _class_hits(preds, targets).mean()


def _accuracy_per_sample(preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    hits = _class_hits(preds, targets)
    return hits.flatten(1).mean(1) if hits.dim() > 1 else hits


def _class_hits(preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1 where the predicted class is the target's, else 0. A float target shaped as the
    predictions holds a row of class probabilities (one-hot, as with
    ``"categorical_crossentropy"``): its arg-max is the class, as cross entropy reads it;
    compared row by row with the class indices it broadcast to a wrong share, or failed."""
    if preds.dim() > 1 and preds.shape[-1] > 1:
        if targets.shape == preds.shape and targets.is_floating_point():
            targets = targets.argmax(dim=-1)
        predicted = preds.argmax(dim=_class_dim(preds, targets))
    else:
        predicted = (preds.reshape(targets.shape) > 0).to(targets.dtype)
    return (predicted == targets).float()


def _class_dim(preds: torch.Tensor, targets: torch.Tensor) -> int:
    """The classes' dimension of ``preds``: the last (``(N, C)``, Hugging Face's ``(N, T,
    C)``), or the second for torch's sequence layout ``(N, C, T)`` against ``(N, T)`` class
    indices, which cross entropy reads that way (the last when both layouts fit)."""
    if preds.dim() > 2 and targets.dim() == preds.dim() - 1:
        fits_last = preds.shape[:-1] == targets.shape
        fits_second = preds.shape[:1] + preds.shape[2:] == targets.shape
        if fits_second and not fits_last:
            return 1
    return -1


def _binary_hits(preds: torch.Tensor, targets: torch.Tensor, threshold: float) -> torch.Tensor:
    """Per output, 1 where thresholding it at ``threshold`` gives its target, else 0."""
    if preds.shape != targets.shape:
        preds = preds.reshape(targets.shape)  # (N, 1) outputs for (N,) targets
    return ((preds > threshold).to(targets.dtype) == targets).float()


def _binary_accuracy(threshold: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Keras' binary accuracy: every output is thresholded and compared, so each label of a
    multi-label target (N, C) counts, where the arg-max would compare one class per sample."""
    def binary_accuracy(preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return _binary_hits(preds, targets, threshold).mean()

    def per_sample(preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        hits = _binary_hits(preds, targets, threshold)
        return hits.flatten(1).mean(1) if hits.dim() > 1 else hits
    binary_accuracy.per_sample = per_sample  # type: ignore[attr-defined]
    return binary_accuracy


def _per_sample_error(power: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def error(preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        values = (preds - _like(targets, preds)).abs().pow(power)
        return values.flatten(1).mean(1) if values.dim() > 1 else values
    return error


def mean_absolute_error(preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean absolute error, with targets reshaped to the predictions when sizes agree."""
    return (preds - _like(targets, preds)).abs().mean()


def mean_squared_error(preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean squared error, with targets reshaped to the predictions when sizes agree."""
    return (preds - _like(targets, preds)).pow(2).mean()


def _like(targets: torch.Tensor, preds: torch.Tensor) -> torch.Tensor:
    if targets.shape != preds.shape and targets.numel() == preds.numel():
        targets = targets.reshape(preds.shape)
    return targets.to(preds.dtype)


class _RegressionLoss(nn.Module):
    """A regression loss that accepts targets of shape (N,) for predictions of shape (N, 1)."""

    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], name: str):
        super().__init__()
        self.fn, self.name = fn, name

    def forward(self, preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.fn(preds, _like(targets, preds))


_LOSSES: dict[str, Callable[[], Callable[..., torch.Tensor]]] = {
    "cross_entropy": nn.CrossEntropyLoss,
    "nll": nn.NLLLoss,
    "mse": lambda: _RegressionLoss(nn.functional.mse_loss, "mse"),
    "mae": lambda: _RegressionLoss(nn.functional.l1_loss, "mae"),
    "huber": lambda: _RegressionLoss(nn.functional.huber_loss, "huber"),
    "bce": lambda: _RegressionLoss(nn.functional.binary_cross_entropy, "bce"),
    "bce_with_logits": lambda: _RegressionLoss(
        nn.functional.binary_cross_entropy_with_logits, "bce_with_logits"),
}
_LOSS_ALIASES = {
    "crossentropy": "cross_entropy", "categorical_crossentropy": "cross_entropy",
    "sparse_categorical_crossentropy": "cross_entropy", "ce": "cross_entropy",
    "mean_squared_error": "mse", "l2": "mse", "mean_absolute_error": "mae", "l1": "mae",
    "smooth_l1": "huber", "binary_crossentropy": "bce", "binary_cross_entropy": "bce",
    "nll_loss": "nll",
}
_CLASSIFICATION_LOSSES = (nn.CrossEntropyLoss, nn.NLLLoss)
# "accuracy" with a binary loss given by name: "bce" takes probabilities, so 0.5 divides them
_BINARY_ACCURACY = {"bce": _binary_accuracy(0.5), "bce_with_logits": _binary_accuracy(0.0)}


def _loss_key(name: str) -> str:
    return _LOSS_ALIASES.get(name.lower(), name.lower())


def resolve_loss(loss: Any) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A loss callable from a name, a module or a function."""
    if isinstance(loss, str):
        key = _loss_key(loss)
        if key not in _LOSSES:
            raise ValueError(f"unknown loss {loss!r}; use one of {sorted(_LOSSES)} or pass a "
                             f"callable loss(preds, targets) -> scalar tensor")
        return _LOSSES[key]()
    if not callable(loss):
        raise TypeError(f"loss must be a name or a callable loss(preds, targets), got "
                        f"{type(loss).__name__}: {loss!r}")
    return loss


def is_classification(loss: Any) -> bool:
    """Whether a resolved loss is a classification loss (so accuracy is a sensible default)."""
    return isinstance(loss, _CLASSIFICATION_LOSSES) or getattr(
        loss, "__name__", "") in {"cross_entropy", "nll_loss"}


_METRICS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "accuracy": accuracy,
    "binary_accuracy": _binary_accuracy(0.5),  # Keras' name and threshold, for any loss
    "mean_absolute_error": mean_absolute_error,
    "mean_squared_error": mean_squared_error,
}
accuracy.per_sample = _accuracy_per_sample  # type: ignore[attr-defined]
mean_absolute_error.per_sample = _per_sample_error(1)  # type: ignore[attr-defined]
mean_squared_error.per_sample = _per_sample_error(2)  # type: ignore[attr-defined]
_METRIC_ALIASES = {"acc": "accuracy", "mae": "mean_absolute_error",
                   "mse": "mean_squared_error"}


def _snake(name: str) -> str:
    """A class name as a metric name: MulticlassAUROC -> multiclass_auroc (acronyms whole)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _named_metrics(loss: Any) -> dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    """The metrics by name for this loss (a name or ``resolve_loss``'s result): "accuracy" is
    the binary accuracy for a binary cross entropy by name; a callable loss the user wrote
    keeps the arg-max one."""
    if isinstance(loss, str):
        name = _loss_key(loss)
    else:
        name = loss.name if isinstance(loss, _RegressionLoss) else ""
    binary = _BINARY_ACCURACY.get(name)
    return _METRICS if binary is None else {**_METRICS, "accuracy": binary}


def resolve_metrics(metrics: Sequence[Any] | str | None, loss: Any) -> list[tuple[str, Any]]:
    """``(name, metric)`` pairs; ``"auto"`` means accuracy for classification losses, and
    ``"accuracy"`` follows the loss as in Keras (the binary accuracy with a binary cross
    entropy by name: see the module's docstring)."""
    if metrics is None:
        return []
    if isinstance(metrics, str):
        if metrics == "auto":
            binary = _named_metrics(loss)["accuracy"]
            return [("accuracy", binary)] if binary is not accuracy else (
                [("accuracy", accuracy)] if is_classification(loss) else [])
        metrics = [metrics]
    named = _named_metrics(loss)
    resolved: list[tuple[str, Any]] = []
    for metric in metrics:
        if isinstance(metric, tuple) and len(metric) == 2 and isinstance(metric[0], str):
            resolved.append(metric)  # ("name", metric): an explicit name
        elif isinstance(metric, str):
            key = _METRIC_ALIASES.get(metric, metric)
            if key not in named:
                raise ValueError(f"unknown metric {metric!r}; use one of {sorted(named)}, "
                                 f"a callable metric(preds, targets) or a torchmetrics metric")
            resolved.append((metric, named[key]))  # Keras: the name given is the key
        elif all(callable(getattr(metric, name, None)) for name in ("update", "compute",
                                                                     "reset")):
            resolved.append((getattr(metric, "name", None) or _snake(type(metric).__name__),
                             metric))
        elif callable(metric):
            resolved.append((getattr(metric, "__name__", None) or _snake(type(metric).__name__),
                             metric))
        else:
            raise TypeError(f"a metric must be a name, a callable or a torchmetrics metric, "
                            f"got {type(metric).__name__}: {metric!r}")
    names = [name for name, _ in resolved]
    if len(set(names)) != len(names):
        raise ValueError(f"two metrics share a name in {names}; give each a distinct name")
    return resolved


def own_copies(metrics: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """``metrics`` with each torchmetrics object (an nn.Module) copied: training and validation
    accumulate at once (a checkpoint taken during validation holds both), so they cannot share
    one object's state. Other objects are kept as given: they may not survive a deep copy."""
    return [(name, copy.deepcopy(metric) if isinstance(metric, nn.Module) else metric)
            for name, metric in metrics]


class MetricSet:
    """Accumulates the loss, its named parts and the metrics over batches on the device;
    ``compute`` syncs once.

    ``weighted`` metrics (Keras' ``weighted_metrics``) weigh each sample by the batch's
    ``sample_weight``; the others ignore it, as in Keras.
    """

    def __init__(self, metrics: list[tuple[str, Any]],
                 weighted: list[tuple[str, Any]] | None = None) -> None:
        self.metrics = metrics
        plain = {name for name, _ in metrics}
        # Keras' names: a weighted metric that shares a plain one's name is "weighted_<name>"
        self.weighted = [(f"weighted_{name}" if name in plain else name,
                          _weighable(name, metric)) for name, metric in weighted or []]
        self._stateful = [hasattr(metric, "compute") for _, metric in metrics]
        self._unchecked = any(self._stateful)  # results read once, at the first batch
        self._probed = False
        self.reset()

    @property
    def names(self) -> list[str]:
        """The metric names compute() returns, besides the loss and its parts."""
        return [name for name, _ in self.metrics] + [name for name, _ in self.weighted]

    def to(self, device: torch.device) -> None:
        """Move the torchmetrics objects' states to ``device``, as the model is moved: a metric
        left on the CPU cannot take a GPU batch."""
        for _, metric in self.metrics:
            if isinstance(metric, nn.Module):
                metric.to(device)

    def reset(self) -> None:
        self._sums: list[torch.Tensor | float] = [0.0] * len(self.metrics)
        self._weighted_sums: list[torch.Tensor | float] = [0.0] * len(self.weighted)
        self._weight_total: torch.Tensor | float = 0.0
        self._loss_sum: torch.Tensor | float = 0.0
        self._part_sums: dict[str, torch.Tensor | float] = {}
        self.count = 0
        self.loss_count = 0
        self.metric_count = 0  # samples the metrics saw
        for (_, metric), stateful in zip(self.metrics, self._stateful):
            if stateful:
                metric.reset()

    def update(self, preds: Any, targets: Any, loss: torch.Tensor | None,
               weight: torch.Tensor | None = None,
               parts: dict[str, torch.Tensor] | None = None,
               samples: int | None = None) -> None:
        """Add one batch. The loss (a batch mean) weighs ``samples``, the batch's size
        (default: the predictions'), so the pass's loss is a mean over samples."""
        size = len(preds) if isinstance(preds, torch.Tensor) and preds.dim() else 1
        self.count += size
        if loss is not None:
            loss_weight = size if samples is None else samples
            self.loss_count += loss_weight
            self._loss_sum = _accumulate(self._loss_sum, loss, loss_weight)
            if parts:
                for name, value in parts.items():
                    self._part_sums[name] = _accumulate(self._part_sums.get(name, 0.0), value,
                                                        loss_weight)
        if not (self.metrics or self.weighted) or preds is None or targets is None:
            return
        self.metric_count += size
        if preds.requires_grad:
            preds = preds.detach()
        for i, ((name, metric), stateful) in enumerate(zip(self.metrics, self._stateful)):
            if stateful:
                metric.update(preds, targets)
                continue
            value = metric(preds, targets)
            try:
                self._sums[i] = _accumulate(self._sums[i], value, size)
            except AttributeError:  # not a tensor: checked here, off the tensor's path
                self._sums[i] = _accumulate(self._sums[i], _number_tensor(name, value), size)
        if self._unchecked:
            self._check_results({name: metric.compute() for (name, metric), stateful
                                 in zip(self.metrics, self._stateful) if stateful})
            self._unchecked = False
        if self.weighted:
            self._update_weighted(preds, targets, weight, size)

    @property
    def needs_probe(self) -> bool:
        """Whether ``probe`` has torchmetrics objects left to check."""
        return self._unchecked and not self._probed and any(
            stateful and isinstance(metric, nn.Module)
            for (_, metric), stateful in zip(self.metrics, self._stateful))

    def probe(self, preds: Any, targets: Any) -> None:
        """Check the results of copies of the torchmetrics objects updated with one batch:
        validation metrics first see a batch after a whole training epoch, so a result that
        cannot be logged is refused at training's first batch instead."""
        if not isinstance(preds, torch.Tensor) or targets is None:
            return
        self._probed = True
        results: dict[str, Any] = {}
        try:
            for (name, metric), stateful in zip(self.metrics, self._stateful):
                if stateful and isinstance(metric, nn.Module):
                    probe: Any = copy.deepcopy(metric).to(preds.device)
                    probe.update(preds.detach(), targets)
                    results[name] = probe.compute()
        except Exception:  # noqa: BLE001 - training's batch may not suit them: checked there
            return
        self._check_results(results)

    def _check_results(self, results: dict[str, Any]) -> None:
        """Check stateful metrics' results once: one that cannot be logged, or a name two
        metrics (or a metric and the loss) would log, is an error now, not at the epoch's end."""
        read = {name: list(_expanded(name, value)) for name, value in results.items()}
        names = [entry for name, _ in self.metrics for entry in read.get(name, [name])]
        names += [name for name, _ in self.weighted]
        twice = sorted({name for name in names if names.count(name) > 1 or name == "loss"})
        if twice:
            raise ValueError(f"metrics would log {twice} twice (or over the loss) among "
                             f"{names}; rename them (a MetricCollection's keys, prefix= or "
                             f"postfix=, or a (name, metric) pair)")

    def _update_weighted(self, preds: torch.Tensor, targets: Any, weight: torch.Tensor | None,
                         size: int) -> None:
        total = weight.sum() if weight is not None else size
        self._weight_total = self._weight_total + total
        for i, (_, per_sample) in enumerate(self.weighted):
            values = per_sample(preds, targets).float()
            weighted = (values * weight.to(values.dtype)).sum() if weight is not None \
                else values.sum()
            self._weighted_sums[i] = self._weighted_sums[i] + weighted

    def state_dict(self) -> dict[str, Any] | None:
        """The running sums and every torchmetrics object's accumulated state, so a mid-epoch
        resume logs the same epoch values; None when a stateful metric is not a torchmetrics
        one (its state cannot be read: it restarts at the resume)."""
        accumulated = []
        for (_, metric), stateful in zip(self.metrics, self._stateful):
            states = _torchmetrics_state(metric) if stateful else None
            if stateful and states is None:
                return None
            accumulated.append(states)
        return {"sums": [_snapshot(total) for total in self._sums],
                "loss_sum": _snapshot(self._loss_sum), "count": self.count,
                "loss_count": self.loss_count, "metric_count": self.metric_count,
                "part_sums": {name: _snapshot(total) for name, total in self._part_sums.items()},
                "weighted_sums": [_snapshot(total) for total in self._weighted_sums],
                "weight_total": _snapshot(self._weight_total),
                "metric_states": accumulated}

    def load_state_dict(self, state: dict[str, Any] | None, device: Any = None) -> None:
        """Restore ``state_dict()``'s sums and states (moved to ``device``); a mismatch is
        ignored."""
        if state is None or len(state["sums"]) != len(self._sums):
            return

        def moved(value: Any) -> Any:
            if isinstance(value, list):  # a torchmetrics list state ("cat" reduction)
                return [moved(item) for item in value]
            return value.to(device) if isinstance(value, torch.Tensor) and device else value
        self._sums = [moved(value) for value in state["sums"]]
        self._loss_sum = moved(state["loss_sum"])
        self.count = int(state["count"])
        self.loss_count = int(state.get("loss_count", self.count))
        self.metric_count = int(state.get("metric_count", self.count))
        self._part_sums = {name: moved(value)
                           for name, value in (state.get("part_sums") or {}).items()}
        weighted = state.get("weighted_sums")
        if weighted is not None and len(weighted) == len(self.weighted):
            self._weighted_sums = [moved(value) for value in weighted]
            self._weight_total = moved(state["weight_total"])
        saved = state.get("metric_states") or [None] * len(self.metrics)
        for (_, metric), states in zip(self.metrics, saved):
            if states is not None:
                _restore_states(metric, states, moved)

    def compute(self, with_loss: bool = True) -> dict[str, float]:
        """The epoch's values as numbers: ``loss`` (when a loss was seen), its parts, then the
        metrics. Reading them syncs once."""
        values: dict[str, float] = {}
        if with_loss and self.loss_count:
            count = self.loss_count
            names = ["loss", *self._part_sums]
            sums = [self._loss_sum, *self._part_sums.values()]
            values.update(zip(names, (float(total) / count for total in _as_floats(sums))))
        values.update({name: float(value) for name, value in self.results().items()})
        return values

    def results(self) -> dict[str, torch.Tensor]:
        """The metrics' values so far as tensors, without reading them to the host (Keras'
        ``metric.result()``). Raises when metrics are set but saw no prediction."""
        if not (self.metrics or self.weighted):
            return {}
        if self.metric_count == 0:
            raise ValueError(
                f"metrics {self.names} saw no prediction and target: a custom step must "
                f"return them ({{'loss': ..., 'preds': ..., 'target': ...}}) or update the "
                f"metrics itself (Model.compute_metrics); batches need targets")
        values: dict[str, torch.Tensor] = {}
        count = self.metric_count
        for (name, metric), stateful, total in zip(self.metrics, self._stateful, self._sums):
            if stateful:
                values.update(_expanded(name, metric.compute()))
            else:
                values[name] = torch.as_tensor(total) / count
        if self.weighted:
            weight = self._weight_total
            for (name, _), total in zip(self.weighted, self._weighted_sums):
                values[name] = torch.as_tensor(total) / weight
        return values

    @property
    def part_names(self) -> list[str]:
        """The loss parts seen so far, in the order the step returned them."""
        return list(self._part_sums)


def _as_floats(values: list[torch.Tensor | float]) -> list[float]:
    """Several running sums read with one device copy."""
    tensors = [value for value in values if isinstance(value, torch.Tensor)]
    if len(tensors) < 2:
        return [float(value) for value in values]
    read = iter(torch.stack([t.float() for t in tensors]).tolist())
    return [next(read) if isinstance(value, torch.Tensor) else float(value) for value in values]


def _weighable(name: str, metric: Any) -> Callable[[torch.Tensor, Any], torch.Tensor]:
    """A per-sample version of a metric, for weighted_metrics."""
    per_sample = getattr(metric, "per_sample", None)
    if per_sample is not None:
        return per_sample  # type: ignore[no-any-return]
    raise TypeError(f"weighted_metrics: {name} cannot weigh samples; use one of "
                    f"{sorted(_METRICS)} (they have per-sample forms) or put it in metrics=")


def _accumulate(total: torch.Tensor | float, value: torch.Tensor,
                weight: int) -> torch.Tensor:
    """``total + value * weight``: one in-place kernel after the first batch, never a graph."""
    if value.requires_grad:
        value = value.detach()
    if isinstance(total, float):  # the first batch of the epoch
        return value.float() * weight
    return total.add_(value, alpha=weight)


def _number_tensor(name: str, value: Any) -> torch.Tensor:
    """A metric's batch value given as a Python or numpy number, as a tensor to accumulate;
    anything else is an error naming the metric and what it should return."""
    number = as_python(value)
    if isinstance(number, numbers.Real):
        return torch.tensor(float(number))
    raise TypeError(f"metric {name!r} returned a {type(value).__qualname__} ({value!r:.60}) "
                    f"for a batch; a metric returns one number: a 0-d tensor (it stays on the "
                    f"device until the epoch's end), a Python float or a numpy scalar")


def _expanded(name: str, value: Any) -> dict[str, Any]:
    """A stateful metric's result as named numbers: a dict (a MetricCollection's) one per key,
    a 1-d tensor (a per-class metric) one per entry, ``name_0``, ``name_1``, ...; a result that
    is none of these nor one number is an error naming the metric."""
    if isinstance(value, Mapping):
        return {entry: number for key, item in value.items()
                for entry, number in _expanded(str(key), item).items()}
    if isinstance(value, torch.Tensor):
        if value.numel() == 1:
            return {name: value}
        if value.dim() == 1 and value.numel():
            return {f"{name}_{i}": item for i, item in enumerate(value)}
        what = f"a tensor of shape {tuple(value.shape)}"
    elif isinstance(as_python(value), numbers.Real):
        return {name: value}
    else:
        what = f"a {type(value).__qualname__}"
    raise TypeError(f"metric {name!r} computes {what}, which cannot be logged; a metric's "
                    f"compute() returns one number, a 1-d tensor (logged as {name}_0, "
                    f"{name}_1, ...) or a dict of them (a MetricCollection: one value per "
                    f"key); reduce it in a subclass's compute() or leave it out of metrics=")


def _torchmetrics_state(metric: Any) -> dict[str, Any] | None:
    """A torchmetrics object's accumulated states (``metric_state``, copied) and update count,
    a MetricCollection's by member; None for other stateful objects. Its own ``state_dict()``
    leaves the states out unless they were registered persistent."""
    states = getattr(metric, "metric_state", None)
    if not isinstance(states, dict) or not hasattr(metric, "_update_count"):
        return _collection_state(metric)

    def copied(value: Any) -> Any:
        if isinstance(value, list):
            return [copied(item) for item in value]
        return value.detach().clone() if isinstance(value, torch.Tensor) else value
    return {"states": {str(name): copied(value) for name, value in states.items()},
            "updates": int(metric._update_count)}


def _collection_state(metric: Any) -> dict[str, Any] | None:
    """A MetricCollection's members' states by member name (None if one has none): members of
    one compute group share their states, so each is saved whole."""
    if not (isinstance(metric, nn.Module) and callable(getattr(metric, "keys", None))):
        return None
    members = {name: _torchmetrics_state(member) for name, member in metric.named_children()}
    if not members or any(states is None for states in members.values()):
        return None
    return {"members": members}


def _restore_states(metric: Any, states: dict[str, Any], moved: Callable[[Any], Any]) -> None:
    """Put ``_torchmetrics_state``'s states back (a collection's into each member)."""
    if "members" in states:
        children = dict(metric.named_children())
        for name, member_states in states["members"].items():
            _restore_states(children[name], member_states, moved)
        return
    for name, value in states["states"].items():
        setattr(metric, name, moved(value))
    metric._update_count = int(states["updates"])  # compute() checks it


def _snapshot(total: torch.Tensor | float) -> torch.Tensor | float:
    """A copy of a running sum that later in-place additions do not change."""
    return total.clone() if isinstance(total, torch.Tensor) else total
