"""Model files: ``Model.save(path)`` and ``hookline.load_model(path)`` (Keras' pair).

A model file is the architecture's importable name and constructor arguments
(``hookline.architecture``), the weights, the compile settings and, when one is known, an
example input for ``summary()``. On disk it has the layout of a full checkpoint, with its own
magic line so that neither is mistaken for the other::

    HOOKLINE-MODEL\\n                                          magic line
    {"version": 1, "size": N, "sha256": "...", ...}\\n          one JSON header line
    N bytes                                                   torch.save of the payload

Loading checks the header, the size and the SHA-256 checksum before anything is unpickled,
then unpickles with ``weights_only=True`` (tensors and plain data only), imports the recorded
class or ``@hookline.serializable`` factory and calls it with the recorded plain arguments:
nothing else from the file runs.
"""

from __future__ import annotations

import inspect
import io
import os
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from hookline import architecture
from hookline.checkpoint import MAGIC as CHECKPOINT_MAGIC
from hookline.checkpoint import (
    MODEL_MAGIC,
    CheckpointMismatchError,
    CorruptCheckpointError,
    UnsafeCheckpointError,
    atomic_write_bytes,
    check_loadable,
)
from hookline.files.framed import Frame
from hookline.user_warning import warn

if TYPE_CHECKING:
    from hookline.keras import Model

__all__ = ["MODEL_FORMAT", "MODEL_MAGIC", "load_model", "read_model_info", "save_model"]

MODEL_FORMAT = "hookline.model"
MODEL_VERSION = 1
MODEL_FRAME = Frame(
    MODEL_MAGIC, "model file", MODEL_VERSION,
    unknown="is not a hookline model file: it does not start with the HOOKLINE-MODEL header "
            "(a weights file? use Model.load_weights)",
    others=((CHECKPOINT_MAGIC, ("is a training checkpoint, not a model file: continue training "
                                "with Trainer(resume=path), or read its weights with "
                                "hookline.checkpoint.load_weights(path)['model']")),))
# torch.optim classes by the names Trainer(optimizer=...) accepts
_OPTIMIZER_NAMES = {"SGD": "sgd", "Adam": "adam", "AdamW": "adamw", "RMSprop": "rmsprop",
                    "Adagrad": "adagrad"}
# constructor options that pick torch's implementation for a device, not what training does:
# left to torch on load, where the device may differ (capturable=True fails on a CPU)
_TORCH_PREFIX = "torch.optim."  # another torch.optim class, recorded by its class name
_IMPLEMENTATION_OPTIONS = frozenset({"foreach", "fused", "capturable", "differentiable"})
_PLAIN_OPTION_TYPES = (bool, int, float, str, type(None))


# --- what is recorded -----------------------------------------------------------------------
def compile_settings(model: Model) -> dict[str, Any]:
    """The compile settings a file can hold as names, and the ones it cannot."""
    missing: list[str] = []
    spec = getattr(model, "_optimizer_spec", None)
    lr = float(model.lr)
    options: dict[str, Any] = {}
    if isinstance(spec, str):
        optimizer: str | None = spec.lower()
    elif isinstance(spec, torch.optim.Optimizer) and _torch_class_name(spec) is not None:
        optimizer = _torch_class_name(spec)
        lr = float(spec.param_groups[0]["lr"])
        options = _optimizer_options(spec, missing)
    else:
        optimizer = None
        missing.append(f"optimizer {spec!r:.60}")
    loss = model.loss if isinstance(model.loss, str) else None
    if model.loss is not None and loss is None:
        missing.append(f"loss {model.loss!r:.60}")
    metrics = []
    for metric in model.metrics:
        if isinstance(metric, str):
            metrics.append(metric)
        else:
            missing.append(f"metric {metric!r:.60}")
    return {"optimizer": optimizer, "lr": lr, "optimizer_options": options, "loss": loss,
            "metrics": metrics, "not_recorded": missing}


def _torch_class_name(optimizer: torch.optim.Optimizer) -> str | None:
    """How a file names a torch optimizer's class: the Trainer's name for it (``"sgd"``),
    else ``"torch.optim.NAdam"``; None for a class torch.optim does not hold."""
    name = type(optimizer).__name__
    if name in _OPTIMIZER_NAMES and getattr(torch.optim, name) is type(optimizer):
        return _OPTIMIZER_NAMES[name]
    if getattr(torch.optim, name, None) is type(optimizer):
        return f"{_TORCH_PREFIX}{name}"
    return None


def _optimizer_options(optimizer: torch.optim.Optimizer, missing: list[str]) -> dict[str, Any]:
    """The hyperparameters the optimizer was built with (its ``defaults`` less the rate,
    recorded apart: momentum, nesterov, betas, weight_decay...), so that load rebuilds it
    as it was; a value that is not plain, and per-group settings, go to ``missing``."""
    name = type(optimizer).__name__
    options = {}
    for key, value in optimizer.defaults.items():
        if key == "lr" or key in _IMPLEMENTATION_OPTIONS:
            continue
        if _plain_option(value):
            options[key] = value
        else:
            missing.append(f"optimizer {name}'s {key}={value!r:.40}")
    first, *others = optimizer.param_groups
    differing = sorted({key for group in others for key in ("lr", *options)
                        if bool(group.get(key) != first.get(key))})
    if differing:
        missing.append(f"optimizer {name}'s per-group {', '.join(differing)} (its "
                       f"{len(optimizer.param_groups)} param groups differ; the file holds "
                       f"the first group's)")
    return options


def _plain_option(value: Any) -> bool:
    if type(value) is tuple:  # Adam's betas
        return all(type(item) in (int, float) for item in value)
    return type(value) in _PLAIN_OPTION_TYPES


def _example(model: Model, example_input: Any) -> torch.Tensor | None:
    from hookline.summary import model_example
    example = example_input if example_input is not None else model_example(model)
    if isinstance(example, torch.Tensor):
        return example.detach()[:1].cpu().clone()
    return None


# --- writing --------------------------------------------------------------------------------
def save_model(model: Model, path: str | os.PathLike, *, architecture_of: Any = None,
               config: dict[str, Any] | None = None, example_input: Any = None) -> Path:
    """Write ``model`` to ``path`` atomically (see the module docstring); returns the path."""
    from hookline import __version__
    spec = architecture.describe(model.module, architecture=architecture_of, config=config)
    architecture.check_rebuilds(spec, model.module)
    payload = {
        "format": MODEL_FORMAT, "version": MODEL_VERSION, "architecture": spec,
        "weights": {key: value.detach().cpu() for key, value in model.module.state_dict().items()},
        "compile": compile_settings(model), "example_input": _example(model, example_input),
        "hookline": __version__,
    }
    check_loadable(payload, "the model file")
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    chunks = MODEL_FRAME.chunks(buffer.getbuffer(), architecture=spec["target"],
                                torch=str(torch.__version__))
    return atomic_write_bytes(chunks, path)


# --- reading --------------------------------------------------------------------------------
def read_model_info(path: str | os.PathLike) -> dict[str, Any]:
    """The header of a model file (version, size, sha256, architecture...), without loading
    the payload. Raises CorruptCheckpointError for other files."""
    return MODEL_FRAME.read_info(path)


def _read_payload(source: Path) -> dict[str, Any]:
    _, body = MODEL_FRAME.read(source)
    try:
        payload = torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise UnsafeCheckpointError(source, f"refused to load {source}: it holds objects that "
                                    f"weights-only unpickling does not allow, which could run "
                                    f"code; hookline never writes such files") from error
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise CorruptCheckpointError(source, f"model file {source} does not hold a hookline "
                                     f"model (no format marker)")
    return payload


def load_model(path: str | os.PathLike, *, compile: bool = True,
               device: str | torch.device = "auto") -> Model:
    """Rebuild the Model saved at ``path``: the architecture, its weights and (``compile``)
    its optimizer, loss and metrics. Returns a Model ready to fit, evaluate or predict.

    Raises CorruptCheckpointError (damaged or another kind of file), ArchitectureError (the
    class cannot be imported or rebuilt) or CheckpointMismatchError (the weights do not fit
    the rebuilt module, e.g. the class changed since).
    """
    from hookline.keras import Model
    source = Path(path)
    payload = _read_payload(source)
    spec = payload["architecture"]
    try:
        module = architecture.build(spec)
    except architecture.ArchitectureError as error:
        raise architecture.ArchitectureError(f"model file {source}: {error}") from None
    _load_state(module, payload["weights"], source)
    architecture.record(module, spec)
    settings = payload.get("compile") or {}
    if compile:
        if settings.get("not_recorded"):
            warn(f"model file {source} does not hold "
                 f"{', '.join(settings['not_recorded'])} (only names are saved); "
                 f"call model.compile(...) with them before fit", UserWarning)
        model = Model(module, optimizer=_recorded_optimizer(settings, module, source),
                      loss=settings.get("loss"), metrics=settings.get("metrics") or None,
                      lr=settings.get("lr", 1e-3), device=device)
    else:
        model = Model(module, loss=None, device=device)
    model._example_input = payload.get("example_input")  # type: ignore[attr-defined]
    return model


def _recorded_optimizer(settings: dict[str, Any], module: torch.nn.Module,
                        source: Path) -> str | torch.optim.Optimizer:
    """The file's optimizer: its name, or, when the file holds the hyperparameters of the
    instance it was compiled with, that class built again with them over ``module``."""
    name = settings.get("optimizer") or "adam"
    options = dict(settings.get("optimizer_options") or {})
    if name.startswith(_TORCH_PREFIX):
        cls = getattr(torch.optim, name[len(_TORCH_PREFIX):], None)
        if cls is None:  # saved with a torch that had it
            warn(f"model file {source} was compiled with {name}, which this torch "
                 f"({torch.__version__}) does not have; it loads with adam: call "
                 f"model.compile(optimizer=...) before fit", UserWarning)
            return "adam"
    elif not options:
        return name
    else:
        cls = getattr(torch.optim, next(k for k, v in _OPTIMIZER_NAMES.items() if v == name))
    known = inspect.signature(cls).parameters
    unknown = sorted(key for key in options if key not in known)
    if unknown:  # saved with another torch version
        warn(f"model file {source} records {cls.__name__} options this torch "
             f"({torch.__version__}) does not take ({', '.join(unknown)}); they are left out",
             UserWarning)
    trainable = [p for p in module.parameters() if p.requires_grad]
    return cls(trainable, lr=settings.get("lr", 1e-3),
               **{key: value for key, value in options.items() if key in known})


def _load_state(module: torch.nn.Module, state: dict[str, Any], source: Path) -> None:
    own = module.state_dict()
    problems = [f"{key} (file {tuple(state[key].shape)}, model {tuple(own[key].shape)})"
                for key in own if key in state and state[key].shape != own[key].shape]
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    if problems or missing or unexpected:
        parts = [f"{label}: {', '.join(keys[:8])}" for label, keys in (
            ("shape mismatch", problems), ("missing in the file", missing),
            ("not in the rebuilt model", unexpected)) if keys]
        raise CheckpointMismatchError(source, f"model file {source}: the weights do not fit "
                                      f"{type(module).__qualname__} as rebuilt now "
                                      f"({'; '.join(parts)}); its class or arguments changed "
                                      f"since the file was saved")
    module.load_state_dict(state)
