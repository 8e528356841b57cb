"""The Keras door: ``Model.fit/evaluate/predict`` and ``Callback`` with Keras' method set.

Keras callbacks receive ``(epoch | batch, logs)`` with Keras' keys (``loss``, metric names,
``val_*``, predict's ``outputs``) and reach the model through ``self.model``
(``stop_training``, ``optimizer.learning_rate``, ``get_weights``/``set_weights``). The logs dicts
are built from engine state at this edge, only for the hooks a callback overrides, so a Keras
callback that does not listen per batch costs nothing per batch.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from hookline.boxes import padded_detections
from hookline.callbacks.history import History
from hookline.callbacks.progress_bar import format_metrics
from hookline.data import ArrayBatches, as_batches, flatten_arrays
from hookline.engine.base import place_model
from hookline.engine.exporter import Exporter
from hookline.engine.predictor import Predictor
from hookline.engine.schedule import check_limit
from hookline.engine.trainer import Trainer
from hookline.engine.validator import Validator
from hookline.hook_checks import check_keras_function, check_keras_methods
from hookline.keras_options import numbers_from_strings, reject_unknown
from hookline.metrics import MetricSet, is_classification, resolve_loss, resolve_metrics
from hookline.module_modes import ModuleModes
from hookline.objective import Objective
from hookline.plain_number import as_python
from hookline.structure import loss_of, prediction_of, unpack_batch
from hookline.wrappers import unwrap

__all__ = ["Callback", "LambdaCallback", "Model", "OptimizerView", "unpack_x_y_sample_weight"]


def unpack_x_y_sample_weight(data: Any) -> tuple[Any, Any, Any]:
    """Keras' helper: ``(x, y, sample_weight)`` from a batch given as ``x``, ``(x,)``,
    ``(x, y)`` or ``(x, y, sample_weight)`` (missing parts are None)."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return data, None, None
    if len(data) == 1:
        return data[0], None, None
    if len(data) == 2:
        return data[0], data[1], None
    if len(data) == 3:
        return data[0], data[1], data[2]
    raise ValueError(f"data must be x, (x,), (x, y) or (x, y, sample_weight); got a tuple of "
                     f"{len(data)}")


# Keras method -> (hookline event, how its arguments are built)
_KERAS_HOOKS: dict[str, tuple[str, str]] = {
    "on_train_begin": ("on_train_start", "plain"),
    "on_train_end": ("on_train_end", "metrics"),
    "on_epoch_begin": ("on_train_epoch_start", "epoch_begin"),
    "on_epoch_end": ("on_fit_epoch_end", "epoch_end"),
    "on_train_batch_begin": ("on_train_batch_start", "batch_begin"),
    "on_train_batch_end": ("on_train_batch_end", "train_batch_end"),
    "on_batch_begin": ("on_train_batch_start", "batch_begin"),  # Keras' legacy names
    "on_batch_end": ("on_train_batch_end", "train_batch_end"),
    "on_test_begin": ("on_val_start", "plain"),
    "on_test_end": ("on_val_end", "metrics"),
    "on_test_batch_begin": ("on_val_batch_start", "batch_begin"),
    "on_test_batch_end": ("on_val_batch_end", "val_batch_end"),
    "on_predict_begin": ("on_predict_start", "plain"),
    "on_predict_end": ("on_predict_end", "plain"),
    "on_predict_batch_begin": ("on_predict_batch_start", "batch_begin"),
    "on_predict_batch_end": ("on_predict_batch_end", "predict_batch_end"),
}


def _train_batch_logs(trainer: Any) -> dict[str, Any]:
    logs: dict[str, Any] = {"loss": float(trainer.train_loss)}
    if trainer.train_metric_set is not None:
        logs.update(trainer.train_metric_set.compute(with_loss=False))
    return logs


def _call_with_logs(kind: str, method: Callable[..., Any], engine: Any) -> None:
    if kind == "plain":
        method(logs={})
    elif kind == "metrics":
        method(logs=dict(engine.metrics))
    elif kind == "epoch_begin":
        method(engine.epoch, logs={})
    elif kind == "epoch_end":
        logs = dict(engine.metrics)
        method(engine.epoch, logs=logs)
        _keep_additions(engine.metrics, logs)
    elif kind == "batch_begin":
        method(engine.batch_i, logs={})
    elif kind == "train_batch_end":
        method(engine.batch_i, logs=_train_batch_logs(engine))
    elif kind == "val_batch_end":
        method(engine.batch_i, logs=engine.metric_set.compute())
    else:  # predict_batch_end: a several-output model's outputs keep their structure
        outputs = engine.outputs if type(engine.outputs) in _STRUCTURES else engine.preds
        method(engine.batch_i, logs={"outputs": _as_numpy(_on_cpu(outputs))})


def _keep_additions(metrics: dict[str, Any], logs: dict[str, Any]) -> None:
    """What a Keras callback writes into its epoch logs reaches the later readers (History,
    CSVLogger, the loggers), as in Keras, where every callback shares one logs dict. A numpy
    scalar or 0-d tensor is kept as its Python number, as Keras' ``pythonify_logs`` does."""
    for name, value in logs.items():
        if metrics.get(name, _MISSING) is not value:
            metrics[name] = as_python(value)


_MISSING = object()


def _chain(calls: list[Callable[[Any], None]]) -> Callable[[Any], None]:
    """One handler for two Keras methods on one event (on_batch_end and on_train_batch_end)."""
    def call(engine: Any) -> None:
        for fn in calls:
            fn(engine)
    return call


class Callback:
    """Base class for Keras-style callbacks (the full Keras method set, all no-ops).

    Example (the Keras guide's early stopping, ported)::

        class EarlyStoppingAtMinLoss(hookline.keras.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if logs["loss"] < self.best:
                    self.best_weights = self.model.get_weights()
                else:
                    self.model.stop_training = True
    """

    order: int = 0
    on_error: str = "raise"

    def __init__(self) -> None:
        self.model: Model | None = None
        self.params: dict[str, Any] = {}

    def set_model(self, model: Model) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs: dict | None = None) -> None: """Start of fit."""
    def on_train_end(self, logs: dict | None = None) -> None: """End of fit."""
    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None: """Epoch starts."""
    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None: """Epoch ends."""
    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None: """Batch."""
    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None: """Batch."""
    def on_batch_begin(self, batch: int, logs: dict | None = None) -> None: """Legacy name."""
    def on_batch_end(self, batch: int, logs: dict | None = None) -> None: """Legacy name."""
    def on_test_begin(self, logs: dict | None = None) -> None: """Start of evaluation."""
    def on_test_end(self, logs: dict | None = None) -> None: """End of evaluation."""
    def on_test_batch_begin(self, batch: int, logs: dict | None = None) -> None: """Batch."""
    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None: """Batch."""
    def on_predict_begin(self, logs: dict | None = None) -> None: """Start of predict."""
    def on_predict_end(self, logs: dict | None = None) -> None: """End of predict."""
    def on_predict_batch_begin(self, batch: int, logs: dict | None = None) -> None: """Batch."""
    def on_predict_batch_end(self, batch: int, logs: dict | None = None) -> None: """Batch."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None

    def _keras_method(self, name: str) -> Callable[..., Any] | None:
        """The callable for a Keras hook when this callback overrides it, else None."""
        if getattr(type(self), name) is not getattr(Callback, name):
            return getattr(self, name)
        return None

    def hookline_handlers(self) -> dict[str, Callable[[Any], None]]:
        """The hookline events this callback listens to, adapted to Keras' signatures."""
        check_keras_methods(self, Callback, _KERAS_HOOKS)  # typos and the native signature
        grouped: dict[str, list[Callable[[Any], None]]] = {}
        for name, (event, kind) in _KERAS_HOOKS.items():
            method = self._keras_method(name)
            if method is not None:
                grouped.setdefault(event, []).append(
                    self._adapter(kind, method, skips_sanity=event.startswith("on_val")))
        return {event: calls[0] if len(calls) == 1 else _chain(calls)
                for event, calls in grouped.items()}

    def _adapter(self, kind: str, method: Callable[..., Any], *,
                 skips_sanity: bool = False) -> Callable[[Any], None]:
        """``skips_sanity``: Keras has no sanity pass, so its ``on_test_*`` methods are not
        called for one (its metrics are thrown away; a logger would record them)."""
        def call(engine: Any) -> None:
            if skips_sanity and getattr(getattr(engine, "trainer", None), "sanity_checking",
                                        False):
                return
            if self.model is None or not self.model._serves(engine):
                self.set_model(Model._for_engine(engine))
            _call_with_logs(kind, method, engine)
        call.__qualname__ = f"{type(self).__qualname__}.{method.__name__}"
        return call


class LambdaCallback(Callback):
    """Keras' LambdaCallback: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``.

    Unlike Keras, an unknown keyword raises ValueError with the closest valid names.
    """

    def __init__(self, **hooks: Callable[..., Any]) -> None:
        super().__init__()
        import difflib
        for name, fn in hooks.items():
            if name not in _KERAS_HOOKS:
                close = difflib.get_close_matches(name, list(_KERAS_HOOKS), n=3)
                hint = f" Did you mean {' or '.join(close)}?" if close else ""
                raise ValueError(f"unknown Keras callback method {name!r}.{hint}")
            if not callable(fn):
                raise TypeError(f"LambdaCallback({name}=...) must be callable, got {fn!r}")
            check_keras_function(name, fn, _KERAS_HOOKS[name][1])
        self._hooks = hooks

    def _keras_method(self, name: str) -> Callable[..., Any] | None:
        fn = self._hooks.get(name)
        if fn is None:
            return None

        def method(*args: Any, logs: dict | None = None) -> Any:
            return fn(*args, logs)
        method.__name__ = name
        return method


class OptimizerView:
    """A torch optimizer seen the Keras way: ``learning_rate`` (alias ``lr``) reads the first
    parameter group's rate and writes every group's."""

    def __init__(self, optimizer: torch.optim.Optimizer, trainer: Any = None) -> None:
        self.torch_optimizer = optimizer
        self._trainer = trainer

    def apply(self, gradients: Sequence[Any] | None = None,
              trainable_variables: Sequence[Any] | None = None) -> None:
        """Keras' ``optimizer.apply(grads, variables)``: one step with these gradients (by
        default the ones ``backward()`` left on the parameters). Inside ``fit`` it is the
        engine's step: clipping, the step events and the step count included."""
        if gradients is not None and trainable_variables is not None:
            for variable, gradient in zip(trainable_variables, gradients, strict=True):
                if variable.grad is not gradient:
                    variable.grad = gradient
        if self._trainer is not None:
            self._trainer.step_optimizer()
        else:
            self.torch_optimizer.step()
            self.torch_optimizer.zero_grad(set_to_none=True)

    step = apply

    @property
    def learning_rate(self) -> float:
        return float(self.torch_optimizer.param_groups[0]["lr"])

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        for group in self.torch_optimizer.param_groups:
            group["lr"] = float(value)

    lr = learning_rate

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.torch_optimizer.param_groups

    def __repr__(self) -> str:
        return f"OptimizerView({type(self.torch_optimizer).__name__}, lr={self.learning_rate})"


_KERAS_BATCH_SIZE = 32  # what Keras uses when batch_size is None or not given


class Model:
    """A Keras-style model around an ``nn.Module``.

    Example::

        model = hookline.Model(net, optimizer="adam", loss="cross_entropy",
                               metrics=["accuracy"])
        history = model.fit(x, y, epochs=5, validation_split=0.2, callbacks=[...])
        model.evaluate(x_test, y_test)
        probabilities = model.predict(x_test)
    """

    @numbers_from_strings  # lr="1e-3", epochs="5" (hookline/keras_options.py)
    def __init__(self, module: nn.Module, optimizer: Any = "adam", loss: Any = None,
                 metrics: Sequence[Any] | str | None = None, *, lr: float = 1e-3,
                 device: str | torch.device = "auto", precision: str = "32",
                 weighted_metrics: Sequence[Any] | str | None = None) -> None:
        if not isinstance(module, nn.Module):
            raise TypeError(f"Model wraps a torch.nn.Module, got {type(module).__name__}")
        # a torch.compile'd or DataParallel module: train through the wrapper, save the plain
        # one (hookline/wrappers.py)
        self._given_module = module  # what the Trainer is handed
        self.module: nn.Module = unwrap(module).plain
        self.device, self.precision, self.lr = device, precision, lr
        self._torch_optimizer: torch.optim.Optimizer | None = None
        self._trainer: Trainer | None = None
        self._engine: Any = None
        self._stop_training = False
        self._fit_data: Any = None  # the last fit's training data (summary shapes)
        self._running_step: str | None = None  # the step override running ("test_step")
        self._functions: list[tuple[str, Callable[[Any], Any], dict[str, Any]]] = []
        self.history: History | None = None
        self._last_metrics: dict[str, float] = {}
        self.compile(optimizer=optimizer, loss=loss, metrics=metrics,
                     weighted_metrics=weighted_metrics)

    def compile(self, optimizer: Any = "adam", loss: Any = None,
                metrics: Sequence[Any] | str | None = None,
                weighted_metrics: Sequence[Any] | str | None = None,
                jit_compile: bool | dict[str, Any] = False) -> None:
        """Set the optimizer, loss and metrics (Keras' compile). ``weighted_metrics`` weigh
        each sample by its ``sample_weight``; ``metrics`` ignore the weights, as in Keras.
        A single name (``metrics="accuracy"``) is one metric, as the Trainer takes it;
        ``"auto"`` is accuracy for a classification loss, nothing otherwise.
        ``jit_compile`` (True or ``torch.compile`` options) compiles the forward for fit."""
        self.jit_compile = jit_compile
        self._optimizer_spec, self.loss = optimizer, loss
        self.metrics = _metric_list(metrics, loss)
        self.weighted_metrics = _metric_list(weighted_metrics, loss)
        self._torch_optimizer = optimizer if isinstance(optimizer, torch.optim.Optimizer) \
            else None

    # --- what Keras callbacks reach through self.model ------------------------------------
    @property
    def stop_training(self) -> bool:
        return self._trainer.stop if self._trainer is not None else self._stop_training

    @stop_training.setter
    def stop_training(self, value: bool) -> None:
        if self._trainer is not None:
            self._trainer.stop = bool(value)
        self._stop_training = bool(value)

    @property
    def optimizer(self) -> OptimizerView | None:
        optimizer = self._trainer.optimizer if self._trainer is not None \
            else self._torch_optimizer
        return OptimizerView(optimizer, self._trainer) if optimizer is not None else None

    def get_weights(self) -> list[np.ndarray]:
        """Copies of every parameter and buffer, in state_dict order (Keras' get_weights)."""
        return [t.detach().cpu().numpy().copy() for t in self.module.state_dict().values()]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Load arrays as returned by ``get_weights`` (same order and shapes)."""
        state = self.module.state_dict()
        if len(weights) != len(state):
            raise ValueError(f"set_weights got {len(weights)} arrays but the model has "
                             f"{len(state)} weights; pass what get_weights() returned")
        new_state = {}
        for (name, current), value in zip(state.items(), weights):
            tensor = torch.as_tensor(np.asarray(value))
            if tuple(tensor.shape) != tuple(current.shape):
                raise ValueError(f"set_weights: {name} has shape {tuple(current.shape)} but "
                                 f"the array given has shape {tuple(tensor.shape)}")
            new_state[name] = tensor.to(current.dtype)
        self.module.load_state_dict(new_state)

    # --- Keras 3's step methods -------------------------------------------------------------
    @property
    def trainable_weights(self) -> list[nn.Parameter]:
        """The parameters that train (Keras' ``trainable_weights``)."""
        return [parameter for parameter in self.module.parameters() if parameter.requires_grad]

    def zero_grad(self) -> None:
        """Clear the parameters' gradients (what a Keras torch ``train_step`` calls first)."""
        self.module.zero_grad(set_to_none=True)

    def train_step(self, data: Any) -> dict[str, Any]:
        """One training step with Keras 3's meaning: forward, loss, backward, the optimizer
        step, metrics; returns the logs. Override it in a subclass to take over the step (it
        then does its own backward and ``self.optimizer.apply()``); ``fit`` runs the same math
        through the engine's faster default step while it is not overridden."""
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        self.zero_grad()
        y_pred = self(x, training=True)
        loss = self.compute_loss(x, y, y_pred, sample_weight)
        loss.backward()
        optimizer = self.optimizer
        if optimizer is None:
            raise ValueError("train_step needs an optimizer: pass optimizer= to Model(...)")
        optimizer.apply()
        return {"loss": loss.detach(), **self.compute_metrics(x, y, y_pred, sample_weight)}

    def test_step(self, data: Any) -> dict[str, Any]:
        """One evaluation step with Keras 3's meaning: forward, loss, metrics; returns logs."""
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        y_pred = self(x, training=False)
        loss = self.compute_loss(x, y, y_pred, sample_weight)
        return {"loss": loss, **self.compute_metrics(x, y, y_pred, sample_weight)}

    def predict_step(self, data: Any) -> Any:
        """One prediction step: the model's output for the batch's inputs."""
        x, _, _ = unpack_x_y_sample_weight(data)
        return self(x, training=False)

    def compute_loss(self, x: Any = None, y: Any = None, y_pred: Any = None,
                     sample_weight: Any = None, training: bool = True) -> torch.Tensor:
        """The compiled loss of ``y_pred`` against ``y``, weighted by ``sample_weight`` as
        Keras weighs it (``x`` is unused, as in Keras' default)."""
        objective = getattr(self._engine, "objective", None)
        if objective is None:
            if self.loss is None:
                raise ValueError("compute_loss needs a loss: pass loss= to Model(...)")
            objective = Objective(resolve_loss(self.loss), by_name=isinstance(self.loss, str))
        loss = objective(y_pred, y, sample_weight)
        if not isinstance(loss, torch.Tensor):
            loss = loss_of(loss)
        if loss is None:
            raise ValueError("compute_loss found no loss: compile a loss, or return one from "
                             "the model")
        return cast("torch.Tensor", loss)

    def compute_metrics(self, x: Any, y: Any, y_pred: Any,
                        sample_weight: Any = None) -> dict[str, torch.Tensor]:
        """Update the compiled metrics of the pass running (fit's training or validation,
        evaluate) with this batch and return their values so far, as tensors (Keras'
        ``compute_metrics``; nothing is read to the host)."""
        metric_set = self._running_metric_set()
        if metric_set is None:
            return {}
        prediction = prediction_of(y_pred) if not isinstance(y_pred, torch.Tensor) else y_pred
        metric_set.update(prediction, y, None, sample_weight)
        return metric_set.results()

    def _running_metric_set(self) -> MetricSet | None:
        """The metrics of the pass running now. Inside fit a ``test_step`` runs fit's
        validation (the trainer's phase stays "train" mid-epoch, so it cannot tell): its
        batches go to the validator's metrics, never into the running training metrics."""
        trainer = self._trainer
        if trainer is None or self._engine is not trainer:  # evaluate's Validator
            return getattr(self._engine, "metric_set", None)
        if self._running_step == "test_step":
            return trainer.validator.metric_set
        return trainer.train_metric_set

    @contextlib.contextmanager
    def _running(self, engine: Any) -> Iterator[None]:
        """``engine`` (evaluate's Validator, predict's Predictor) is the run in progress. One
        started inside a fit (a Keras callback's ``self.model.evaluate(...)``) hands the fit
        back when it ends, so ``stop_training``, ``optimizer`` and the metrics still reach
        the fit's trainer; outside a fit, the last fit's trainer is let go."""
        trainer, previous = self._trainer, self._engine
        nested = trainer is not None and trainer.callbacks.fits_running > 0
        self._engine = engine
        if not nested:
            self._trainer = None
        try:
            yield
        finally:
            if nested:
                self._engine = previous

    def _overrides(self, name: str) -> bool:
        return getattr(type(self), name) is not getattr(Model, name)

    def _step_adapter(self, name: str) -> Callable[[Any, Any], Any]:
        """The engine step that runs a ``train_step``/``test_step``/``predict_step`` override:
        the override's logs become the step's loss and logged values."""
        method = getattr(self, name)

        def step(engine: Any, data: Any) -> Any:
            self._running_step = name
            try:
                result = method(data)
            finally:
                self._running_step = None
            if name == "predict_step":
                return result
            if not isinstance(result, dict):
                raise TypeError(f"{type(self).__name__}.{name} must return a dict of logs "
                                f"(Keras' meaning), got {type(result).__name__}")
            logs = {key: value for key, value in result.items() if key != "loss"}
            if name == "test_step":
                return {"loss": result["loss"]} if "loss" in result else None
            if "loss" not in result:
                raise ValueError(f"{type(self).__name__}.train_step must return logs with a "
                                 f"'loss' entry, got {sorted(result)}")
            return {"loss": result["loss"], "logs": logs}
        return step

    def __call__(self, *inputs: Any, training: bool | None = None, **options: Any) -> Any:
        """``self(x, training=True)`` inside a step is the forward pass (Keras); elsewhere
        ``model(source, stream=True)`` gives results from a Predictor (Ultralytics).

        ``training=`` selects the layers' mode for that call, as in Keras: ``False`` in a
        ``train_step`` runs dropout and batch norm in eval mode, ``True`` in a ``test_step``
        in train mode; each submodule's own mode is put back after the call."""
        if training is not None or self._running_step is not None:
            args, kwargs, _, _ = unpack_batch((inputs[0],) if len(inputs) == 1 else (inputs,))
            module = self.module
            if training is None or training == module.training:
                return module(*args, **kwargs)
            return _forward_in_mode(module, bool(training), args, kwargs)
        stream = options.pop("stream", False)
        predictor = Predictor(self.module, callbacks=self._callback_list(None),
                              device=self.device, precision=self.precision, **options)
        self._engine = predictor
        return predictor(inputs[0], stream=stream)

    def _serves(self, engine: Any) -> bool:
        return engine is self._engine or engine is self._trainer or (
            getattr(engine, "trainer", None) is not None and engine.trainer is self._trainer)

    @classmethod
    def _for_engine(cls, engine: Any) -> Model:
        """A Model view of an engine, for Keras callbacks registered on a plain Trainer."""
        trainer = engine if isinstance(engine, Trainer) else getattr(engine, "trainer", None)
        model = cls(engine.model, optimizer=trainer.optimizer if trainer else "adam",
                    loss=getattr(engine, "loss_fn", None))
        model._trainer, model._engine = trainer, engine
        return model

    # --- Ultralytics' spelling --------------------------------------------------------------
    def add_callback(self, event: str, fn: Callable[[Any], Any], **filters: Any) -> None:
        """Register ``fn(engine)`` on an event for every later fit/evaluate/predict."""
        from hookline.callback_list import CallbackList
        # checked now (event, fn's signature, filters), not at the next fit
        reject_unknown("add_callback", filters, _own_options(CallbackList.add_function)[2:])
        CallbackList().add_function(event, fn, **filters)
        self._functions.append((event, fn, filters))

    def train(self, x: Any = None, y: Any = None, **options: Any) -> dict[str, float]:
        """Ultralytics' name for fit; returns the last epoch's metrics."""
        self.fit(x, y, **options)
        return self._last_metrics

    def val(self, x: Any = None, y: Any = None, **options: Any) -> dict[str, float]:
        """Ultralytics' name for evaluate; returns a metrics dict."""
        # return_dict=True always gives the dict branch of evaluate's return type
        return cast("dict[str, float]", self.evaluate(x, y, return_dict=True, **options))

    def export(self, format: str = "pt", *, file: str | Path | None = None,
               example_input: Any = None, callbacks: Sequence[Any] | None = None,
               **options: Any) -> Path:
        """Export to "pt", "safetensors", "torchscript" or "onnx" (see Exporter); prints and
        returns the path. After ``fit`` no example is needed (the inputs' structure fit saw,
        ``hookline.signature``) and the file goes to the fit's ``save_dir/weights/`` when it
        had one (else the current folder)."""
        from hookline.signature import export_file
        if example_input is None:
            signature = getattr(self, "_input_signature", None)
            if signature is None:  # a loaded model: the sample kept in its file, if any
                example_input = getattr(self, "_example_input", None)
            options.setdefault("signature", signature)
        if file is None:
            file = export_file(getattr(self, "_fit_save_dir", None), format)
        exporter = Exporter(self.module, format=format, file=file, example_input=example_input,
                            callbacks=self._callback_list(callbacks), **options)
        self._engine = exporter
        path = exporter.export()
        print(f"exported {format} to {path}")
        return path

    # --- Keras' fit / evaluate / predict ------------------------------------------------------
    @numbers_from_strings  # lr="1e-3", epochs="5" (hookline/keras_options.py)
    def fit(self, x: Any = None, y: Any = None, batch_size: int | None = None, epochs: int = 1,
            verbose: int = 1, callbacks: Sequence[Any] | None = None,
            validation_split: float = 0.0, validation_data: Any = None, shuffle: bool = True,
            initial_epoch: int = 0, steps_per_epoch: int | None = None,
            sample_weight: Any = None, class_weight: dict[int, float] | None = None,
            validation_freq: int | Sequence[int] = 1, resume: Any = None,
            validation_steps: int | None = None, validation_batch_size: int | None = None,
            **trainer_options: Any) -> History:
        """Train like Keras' ``fit``; returns the History (also ``model.history``).

        ``x`` may be an array, a list or tuple of arrays (several inputs: ``model(a, b)``), a
        dict of arrays (named inputs, or a whole dict batch with ``y=None``), a DataLoader or
        batches. ``validation_freq`` validates every n epochs or after the listed (1-based)
        epochs, as in Keras. ``sample_weight`` and ``class_weight`` weigh the loss and the
        ``weighted_metrics`` as in Keras (a class weight multiplies the sample's weight).
        Without a compiled loss, the module must return its own loss (a Hugging Face model).

        ``resume`` continues an interrupted run exactly from a full checkpoint: True (the
        newest in the checkpoint callbacks' folders), a file or a folder (see
        ``Trainer(resume=...)``); ``BackupAndRestore`` in ``callbacks`` does it automatically.
        ``validation_steps`` validates on that many batches, ``validation_batch_size`` batches
        array validation data by its own size, as in Keras. Any other option goes to the
        ``Trainer`` (``accumulate=``, ``clip_grad_norm=``, ``max_steps=``...); a misspelt one
        is an error naming the nearest valid names.

        Unlike Keras, ``steps_per_epoch`` restarts the data every epoch (Keras draws the next
        batches from where the last epoch stopped): each epoch sees the first batches of a
        fresh (reshuffled) pass.
        """
        _check_fit_options(trainer_options)
        _require_x("fit", x, y)
        y = _class_indices(y, self.loss)
        validation_data = _validation_indices(validation_data, self.loss)
        batch_size = _KERAS_BATCH_SIZE if batch_size is None else batch_size
        if validation_steps is not None:
            if "limit_val_batches" in trainer_options:
                raise ValueError("pass validation_steps or limit_val_batches, not both (they "
                                 "are the same limit under Keras' and Lightning's names)")
            trainer_options["limit_val_batches"] = validation_steps
        weights = _class_weights(y, class_weight, sample_weight)
        # class_weight weighs training alone: held-out rows keep only their sample_weight
        train_data, val_data = _split_validation(x, y, validation_split, validation_data,
                                                 weights, sample_weight)
        if validation_batch_size is not None:
            val_data = _batched_validation(val_data, validation_batch_size)
        if self._overrides("train_step"):
            trainer_options.setdefault("training_step", self._step_adapter("train_step"))
            trainer_options.setdefault("automatic_optimization", False)
        if self._overrides("test_step"):
            trainer_options.setdefault("validation_step", self._step_adapter("test_step"))
        trainer_options.setdefault("weighted_metrics", self.weighted_metrics)
        trainer_options.setdefault("check_val_every_n_epoch", validation_freq)
        trainer_options.setdefault("compile", self.jit_compile)
        optimizer = self._torch_optimizer or self._optimizer_spec
        trainer = Trainer(self._given_module, optimizer=optimizer, loss=self.loss, train_data=train_data,
                          val_data=val_data, epochs=epochs, batch_size=batch_size, shuffle=shuffle, lr=self.lr,
                          metrics=self.metrics, train_metrics=True,
                          callbacks=self._callback_list(callbacks), device=self.device,
                          precision=self.precision, verbose=verbose,
                          initial_epoch=initial_epoch, steps_per_epoch=steps_per_epoch,
                          resume=resume, **trainer_options)
        if not trainer.callbacks.find(History):  # default_callbacks=False: fit still returns one
            trainer.callbacks.add(History())
        self._torch_optimizer = trainer.optimizer
        self._trainer, self._engine = trainer, trainer
        self._fit_data = trainer.train_data  # summary() shapes, after evaluate/predict too
        self._stop_training = False
        # what fit will run (fast_dev_run and limit_train_batches included), as Keras' are
        params = {"epochs": trainer.epochs, "verbose": verbose,
                  "steps": trainer.batches_per_epoch}
        for callback in trainer.callbacks:
            if isinstance(callback, Callback):
                callback.set_params(params)
        self._last_metrics = trainer.fit()
        # what export needs afterwards (hookline.signature)
        self._input_signature, self._fit_save_dir = trainer.input_signature, trainer.save_dir
        self.history = trainer.callbacks.find(History)[0]
        return self.history

    @numbers_from_strings  # lr="1e-3", epochs="5" (hookline/keras_options.py)
    def evaluate(self, x: Any = None, y: Any = None, batch_size: int | None = None,
                 verbose: int = 1,
                 callbacks: Sequence[Any] | None = None, return_dict: bool = False,
                 sample_weight: Any = None, steps: int | None = None,
                 **unknown: Any) -> float | list[float] | dict[str, float]:
        """Loss and metrics on data, like Keras' ``evaluate`` (``steps``: that many batches)."""
        reject_unknown("evaluate", unknown, _own_options(Model.evaluate))
        _check_steps("evaluate", steps)
        _require_x("evaluate", x, y)
        batch_size = _KERAS_BATCH_SIZE if batch_size is None else batch_size
        data = _pair(x, _class_indices(y, self.loss), sample_weight)
        step = self._step_adapter("test_step") if self._overrides("test_step") else None
        validator = Validator(self.module, data=data, loss=self.loss, metrics=self.metrics,
                              weighted_metrics=self.weighted_metrics, batch_size=batch_size,
                              device=self.device, precision=self.precision,
                              callbacks=self._callback_list(callbacks), step=step,
                              limit_batches=steps)
        place_model(validator.model, validator.device)
        with self._running(validator):
            metrics = validator.validate()
        if verbose:
            print(format_metrics(metrics))
        if return_dict:
            return metrics
        values = list(metrics.values())
        return values[0] if len(values) == 1 else values

    @numbers_from_strings  # lr="1e-3", epochs="5" (hookline/keras_options.py)
    def predict(self, x: Any, batch_size: int | None = None, verbose: int = 0,
                callbacks: Sequence[Any] | None = None, steps: int | None = None,
                **unknown: Any) -> Any:
        """Model outputs for ``x`` as one numpy array, like Keras' ``predict``; a model (or
        ``predict_step``) returning a tuple, list or dict gives that structure of arrays, one
        per output, as Keras gives a several-output model's. A detector,
        whose predict step returns ``{"boxes": ...}`` (``hookline.boxes``), gives a dict of
        arrays padded with -1 as KerasCV's detectors do: ``boxes``, ``confidence``,
        ``classes``, ``num_detections`` (``hookline.boxes.padded_detections``)."""
        reject_unknown("predict", unknown, _own_options(Model.predict))
        _check_steps("predict", steps)
        batch_size = _KERAS_BATCH_SIZE if batch_size is None else batch_size
        step = self._step_adapter("predict_step") if self._overrides("predict_step") else None
        predictor = Predictor(self.module, callbacks=self._callback_list(callbacks),
                              device=self.device, precision=self.precision,
                              batch_size=batch_size, step=step, limit_batches=steps)
        structured: list[Any] = []  # Keras returns every output of a several-output model
        predictor.callbacks.add_function(
            "on_predict_batch_end", lambda engine: _keep_structured(engine.outputs, structured))
        with self._running(predictor):
            results = predictor(_inputs_only(x))
        # a callback may have paired each result with extra data (zip(results, frames))
        firsts = [item[0] if isinstance(item, tuple) else item for item in results]
        with_boxes = sum(getattr(item, "boxes", None) is not None for item in firsts)
        if with_boxes == len(firsts) > 0:
            return padded_detections([item.boxes for item in firsts])
        if with_boxes:
            raise ValueError(f"predict: {with_boxes} of {len(firsts)} results have boxes and "
                             f"the others none, so there is neither one array nor one set of "
                             f"boxes to return; set result.boxes on every result (an empty "
                             f"Boxes(torch.zeros(0, 6)) for an image without detections)")
        if structured and len(structured) == predictor.batch_i + 1:
            return _joined_outputs(structured)
        outputs = [getattr(item, "output", item) for item in firsts]
        return torch.stack(outputs).numpy() if outputs else np.empty((0,))

    def _callback_list(self, callbacks: Sequence[Any] | None) -> list[Any]:
        from hookline.callback_list import CallbackList, listed
        registered = CallbackList()
        for position, callback in enumerate(listed(callbacks)):  # one callback: [callback]
            if isinstance(callback, Callback):
                callback.set_model(self)
            registered.add(callback, _position=position)
        for event, fn, filters in self._functions:
            registered.add_function(event, fn, **filters)
        return registered  # type: ignore[return-value]

    # --- saving and summary (hookline/saving.py, safetensors_weights.py, summary.py) -------
    def save(self, path: str | Path, *, architecture: Any = None,
             config: dict[str, Any] | None = None, example_input: Any = None) -> Path:
        """Save architecture, weights and compile settings; ``hookline.load_model(path)``
        rebuilds the Model. See ``hookline.architecture`` for how the architecture is
        recorded (``architecture=``/``config=`` give it explicitly)."""
        from hookline.saving import save_model
        return save_model(self, path, architecture_of=architecture, config=config,
                          example_input=example_input)

    def save_weights(self, path: str | Path) -> Path:
        """Write the weights (parameters and buffers) as a safetensors file."""
        from hookline.safetensors_weights import save_safetensors
        return save_safetensors(self.module, path)

    def load_weights(self, path: str | Path) -> None:
        """Load a safetensors file written by ``save_weights`` (names and shapes must match)."""
        from hookline.safetensors_weights import load_safetensors
        load_safetensors(self.module, path)

    def summary(self, example_input: Any = None, *, max_depth: int = 1,
                print_fn: Callable[[str], Any] | None = print) -> Any:
        """Print (with ``print_fn``; None: don't) and return the layers, output shapes and
        parameter counts; shapes from ``example_input`` or the example the model knows."""
        from hookline.summary import model_example, summarize
        if example_input is not None:
            example_input = torch.as_tensor(np.asarray(example_input)) \
                if not isinstance(example_input, torch.Tensor) else example_input
            self._example_input = example_input
        summary = summarize(self.module, model_example(self), max_depth=max_depth,
                            strict=example_input is not None)
        if print_fn is not None:
            print_fn(str(summary))
        return summary


def _metric_list(metrics: Sequence[Any] | str | None, loss: Any) -> list[Any]:
    """compile's metrics as a list: a bare name is one metric, not its letters (list("acc")),
    and "auto" the names it stands for with this loss (so saving records them)."""
    if metrics is None:
        return []
    if isinstance(metrics, str):
        if metrics != "auto":
            return [metrics]
        loss_fn = resolve_loss(loss) if loss is not None else None
        return [name for name, _ in resolve_metrics("auto", loss_fn)]
    return list(metrics)


# Trainer options the Model sets from its own state, and where a user sets them instead
_SET_ON_MODEL = {
    "model": "the Model wraps its module", "train_data": "pass the data as x (and y)",
    "val_data": "pass validation_data= or validation_split=",
    "optimizer": "set it on the Model: Model(module, optimizer=...) or compile(optimizer=...)",
    "loss": "set it on the Model: Model(module, loss=...) or compile(loss=...)",
    "lr": "set it on the Model: Model(module, lr=...) or model.optimizer.learning_rate = ...",
    "learning_rate": "set it on the Model: Model(module, lr=...) or "
                     "model.optimizer.learning_rate = ...",
    "metrics": "set it on the Model: Model(module, metrics=[...]) or compile(metrics=[...])",
    "train_metrics": "fit always computes the metrics on training batches too, as Keras does",
    "device": "set it on the Model: Model(module, device=...)",
    "precision": "set it on the Model: Model(module, precision=...)",
}


def _own_options(method: Callable[..., Any]) -> list[str]:
    return [name for name, parameter in inspect.signature(method).parameters.items()
            if name != "self" and parameter.kind is not parameter.VAR_KEYWORD]


def _check_fit_options(trainer_options: dict[str, Any]) -> None:
    trainer = set(_own_options(Trainer.__init__)) - set(_SET_ON_MODEL)
    reject_unknown("fit", trainer_options, trainer | set(_own_options(Model.fit)),
                   _SET_ON_MODEL)


def _check_steps(call: str, steps: Any) -> None:
    """``steps`` checked as fit's ``validation_steps`` is, naming the call."""
    if steps is not None:
        try:
            check_limit("steps", steps)
        except ValueError as error:
            raise ValueError(f"Model.{call}(steps={steps!r}): {error}") from None


def _batched_validation(data: Any, batch_size: int) -> Any:
    """Keras' validation_batch_size: array validation data batched by its own size."""
    if data is None:
        raise ValueError("validation_batch_size needs validation data: pass validation_data= "
                         "or validation_split=")
    batches = as_batches(data, name="validation_data", batch_size=batch_size)
    if not isinstance(batches, ArrayBatches):
        raise TypeError("validation_batch_size applies to array validation data; a "
                        "DataLoader keeps its own batch size (set it on the DataLoader)")
    return batches


def _forward_in_mode(module: nn.Module, training: bool, args: Any, kwargs: Any) -> Any:
    """One forward with every layer in ``training`` mode, then each submodule's mode as it
    was: a submodule the user froze in eval (a batch norm) stays in eval."""
    modes = ModuleModes(module)
    module.train(training)
    try:
        return module(*args, **kwargs)
    finally:
        modes.restore()


_STRUCTURES = (tuple, list, dict)  # exact types: a Hugging Face ModelOutput keeps its logits


def _keep_structured(outputs: Any, kept: list[Any]) -> None:
    """Keep a batch's outputs on the CPU when the step returned a tuple, list or dict."""
    if type(outputs) in _STRUCTURES:
        kept.append(_on_cpu(outputs))


def _on_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.detach()
        return (value.float() if value.dtype == torch.bfloat16 else value).cpu()
    if isinstance(value, dict):
        return {key: _on_cpu(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(_on_cpu(item) for item in value)
    return value


def _as_numpy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.numpy()
    if isinstance(value, dict):
        return {key: _as_numpy(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(_as_numpy(item) for item in value)
    return value


def _joined_outputs(batches: list[Any]) -> Any:
    """Each output's batches joined into one array, in the structure the model returned (a
    tuple, list or dict of arrays), as Keras' ``predict`` gives a several-output model's."""
    first = batches[0]
    if isinstance(first, dict):
        if any(not isinstance(b, dict) or b.keys() != first.keys() for b in batches):
            raise ValueError(f"predict: the model's outputs changed keys between batches "
                             f"(first {sorted(first)}); return the same keys for every batch")
        return {key: _joined_outputs([b[key] for b in batches]) for key in first}
    if isinstance(first, (tuple, list)):
        if any(not isinstance(b, (tuple, list)) or len(b) != len(first) for b in batches):
            raise ValueError(f"predict: the model returned {len(first)} outputs for the first "
                             f"batch and a different number later; return the same outputs "
                             f"for every batch")
        return type(first)(_joined_outputs([b[i] for b in batches]) for i in range(len(first)))
    if all(isinstance(b, torch.Tensor) and b.dim() > 0 for b in batches):
        return torch.cat(batches).numpy()
    return np.asarray([b.numpy() if isinstance(b, torch.Tensor) else b for b in batches])


def _require_x(call: str, x: Any, y: Any) -> None:
    """x=None (with y given) reached the model as its input: a raw error from its first layer."""
    if x is None:
        given = " (y was given: pass the inputs too)" if y is not None else ""
        raise ValueError(f"Model.{call}() needs x, the model's inputs{given}: arrays, a list or "
                         f"dict of arrays, a DataLoader or an iterable of (x, y) batches")


def _class_indices(y: Any, loss: Any) -> Any:
    """Integer labels of another width (int32, uint8) as int64 for a classification loss:
    Keras takes them, torch's cross entropy wants int64 class indices (as float64 inputs are
    cast to float32, hookline.data)."""
    if loss is None or not _narrow_integers(y) or not is_classification(resolve_loss(loss)):
        return y
    return y.astype(np.int64) if isinstance(y, np.ndarray) else y.long()


def _narrow_integers(y: Any) -> bool:
    if isinstance(y, np.ndarray):
        return bool(np.issubdtype(y.dtype, np.integer)) and y.dtype != np.int64
    if isinstance(y, torch.Tensor):
        return not (y.is_floating_point() or y.is_complex()) and \
            y.dtype not in (torch.int64, torch.bool)
    return False


def _validation_indices(data: Any, loss: Any) -> Any:
    """validation_data's labels (its second array) as ``_class_indices`` casts y."""
    if isinstance(data, (tuple, list)) and len(data) in (2, 3) and _narrow_integers(data[1]):
        return type(data)((data[0], _class_indices(data[1], loss), *data[2:]))
    return data


def _pair(x: Any, y: Any, sample_weight: Any = None) -> Any:
    if y is None:
        if sample_weight is not None:
            raise ValueError("sample_weight needs targets: pass y= as well")
        return x
    return (x, y) if sample_weight is None else (x, y, sample_weight)


def _inputs_only(x: Any) -> Any:
    """Keras' predict(x): a list or tuple of arrays is several inputs, not (x, y)."""
    if isinstance(x, (list, tuple)) and flatten_arrays(tuple(x)) is not None:
        return (tuple(x),)
    return x


def _class_weights(y: Any, class_weight: dict[int, float] | None,
                   sample_weight: Any) -> Any:
    """Keras' class_weight as per-sample weights (multiplied into sample_weight)."""
    if class_weight is None:
        return sample_weight
    if not isinstance(class_weight, dict) or not class_weight:
        raise TypeError(f"class_weight must be a dict {{class index: weight}}, got "
                        f"{class_weight!r}")
    if y is None or not isinstance(y, (np.ndarray, torch.Tensor)):
        raise ValueError("class_weight needs y as an array of class indices (for a DataLoader, "
                         "give each batch a sample_weight instead)")
    labels = torch.as_tensor(np.asarray(y))
    if labels.ndim == 2 and labels.shape[1] > 1:
        labels = labels.argmax(dim=1)  # one-hot (or soft) targets: Keras weighs by the argmax
    labels = labels.long().reshape(-1)
    if len(labels) != len(y):
        raise ValueError("class_weight needs one class index per sample (y of shape (N,)) "
                         "or one-hot rows (N, classes)")
    known = sorted(class_weight)
    missing = sorted(set(labels.unique().tolist()) - set(known))
    if missing:
        raise ValueError(f"class_weight has no weight for classes {missing}; give every "
                         f"class in y a weight (Keras' rule)")
    table = torch.zeros(max(known) + 1)
    for index, weight in class_weight.items():
        table[int(index)] = float(weight)
    weights = table[labels]
    if sample_weight is not None:
        sample_weight = torch.as_tensor(np.asarray(sample_weight), dtype=torch.float32)
        if len(sample_weight) != len(labels):  # the error the unweighted batches give
            raise ValueError(f"train_data: y has {len(labels)} samples but sample_weight has "
                             f"{len(sample_weight)} samples; every array must have the same "
                             f"number of samples (one weight per sample)")
        weights = weights * sample_weight
    return weights


def _take(data: Any, part: slice) -> Any:
    if isinstance(data, dict):
        return {key: _take(value, part) for key, value in data.items()}
    if isinstance(data, (tuple, list)):
        return type(data)(_take(value, part) for value in data)
    return data[part]


def _split_validation(x: Any, y: Any, split: float, validation_data: Any,
                      sample_weight: Any = None, val_weight: Any = None) -> tuple[Any, Any]:
    """Keras' validation_split: the last ``split`` share of the arrays, taken before shuffling;
    training weighs by ``sample_weight``, the held-out share by ``val_weight``."""
    if isinstance(split, bool) or not isinstance(split, (int, float)):
        raise TypeError(f"validation_split must be a float in (0, 1), got {split!r}")
    if split and not 0.0 < split < 1.0:
        raise ValueError(f"validation_split must be in (0, 1), got {split!r}; it is the share "
                         f"of the data held out for validation (e.g. 0.2)")
    data = _pair(x, y, sample_weight)
    if not split:
        return data, validation_data
    if validation_data is not None:
        raise ValueError("pass validation_split or validation_data, not both")
    flat = flatten_arrays(data if isinstance(data, (tuple, dict)) else (data,))
    arrays = flat[0] if flat is not None else None
    if arrays is None:
        raise ValueError("validation_split needs array data (x and y as tensors or numpy "
                         "arrays); for a DataLoader pass validation_data instead")
    sizes = {len(array) for array in arrays}
    if len(sizes) > 1:
        raise ValueError(f"x and y must have the same number of samples, got "
                         f"{' and '.join(str(len(a)) for a in arrays)}")
    size = len(arrays[0])
    cut = int(size * (1.0 - split))
    if cut <= 0 or cut >= size:
        raise ValueError(f"validation_split={split} leaves an empty set with {size} samples")
    held_out = data if val_weight is sample_weight else _pair(x, y, val_weight)
    return _take(data, slice(None, cut)), _take(held_out, slice(cut, None))
