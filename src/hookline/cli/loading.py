"""What ``model=``, ``data=``, ``source=`` and ``weights=`` name, loaded into Python objects.

A spec ``module:attribute`` is imported with the current folder on the import path (so
``model=mymodel:build`` finds ``./mymodel.py`` as ``python -m`` would); ``path/file.py:attribute``
loads that file. ``hookline train`` records in every weights file how to rebuild the model, the
shape of one input, the data it held out for validation and the loss it trained with
(``build_info``), so ``val``, ``predict`` and ``export`` need only ``weights=``, and ``val``
validates on the rows training held out, with the training's loss, not on rows it trained on.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from hookline.cli.errors import UsageError

__all__ = ["BUILD_KEY", "DEFAULT_LOSS", "DEFAULT_VAL_SPLIT", "MODELS", "build_info",
           "build_model", "data_for", "example_input", "held_out", "load_data", "load_object",
           "load_source", "own_step", "read_weights", "recorded_loss", "recorded_split"]

# built-in model names -> (module, factory)
MODELS = {"digits_cnn": ("hookline.demo", "digits_cnn"),
          "shapes_detector": ("hookline.detection", "shapes_detector")}
# the key of a weights file that holds build_info()
BUILD_KEY = "hookline_build"
# data sources split by val_split= (a .npz file too, when it has no x_val, y_val)
_SPLIT_DATA = ("digits", "shapes")
# the fraction held out when val_split= is not given
DEFAULT_VAL_SPLIT = 0.2
# the loss of train and val when loss= is not given (and weights= records none)
DEFAULT_LOSS = "cross_entropy"


def _import_file(path: Path) -> ModuleType:
    name = f"_hookline_user_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"{path} cannot be imported as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)  # so the file can import its neighbours
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(folder)
    return module


def _import_module(name: str, what: str) -> ModuleType:
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name is None or not (name == error.name or name.startswith(error.name + ".")):
            raise  # the user's module itself failed on an import: that is its own error
        raise UsageError(f"{what}: no module named {error.name!r} in {cwd} or on the import "
                         f"path; give package.module:name or a file, path/to/file.py:name"
                         ) from None
    finally:
        if added:
            sys.path.remove(cwd)


def load_object(spec: str, what: str) -> Any:
    """The attribute named by ``module:attribute`` or ``path/file.py:attribute``."""
    target, sep, attribute = spec.rpartition(":")
    if not sep or not target or not attribute:
        raise UsageError(f"{what}={spec!r} is not module:name or file.py:name")
    if target.endswith(".py") or "/" in target or os.sep in target:
        path = Path(target)
        if not path.is_file():
            raise UsageError(f"{what}: file {path} does not exist (looked from {os.getcwd()})")
        module = _import_file(path)
    else:
        module = _import_module(target, what)
    if not hasattr(module, attribute):
        names = [name for name in vars(module) if not name.startswith("_")]
        close = difflib.get_close_matches(attribute, names, n=2)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise UsageError(f"{what}: {target} has no {attribute!r}{hint}")
    return getattr(module, attribute)


def _file_spec(spec: str) -> str | None:
    """``spec`` as an absolute ``file.py:name``, so a weights file can rebuild it anywhere."""
    target, _, attribute = spec.rpartition(":")
    if target.endswith(".py") or "/" in target:
        return f"{Path(target).resolve()}:{attribute}"
    module = sys.modules.get(target)
    file = getattr(module, "__file__", None)
    return f"{Path(file).resolve()}:{attribute}" if file else None


def build_model(spec: str) -> Any:
    """A model from a built-in name, ``package.module:factory`` or ``file.py:factory``."""
    import torch

    if spec in MODELS:
        module_name, attribute = MODELS[spec]
        factory = getattr(importlib.import_module(module_name), attribute)
    elif ":" not in spec:
        close = difflib.get_close_matches(spec, list(MODELS), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UsageError(f"unknown model {spec!r}{hint}; use one of {sorted(MODELS)}, "
                         f"package.module:factory or file.py:factory (a function returning "
                         f"an nn.Module)")
    else:
        factory = load_object(spec, "model")
    if not callable(factory):
        raise UsageError(f"model={spec!r} names {type(factory).__name__}, not a function "
                         f"returning an nn.Module")
    model = factory()
    if not isinstance(model, torch.nn.Module):
        raise UsageError(f"model={spec!r} returned {type(model).__name__}, not an nn.Module")
    return model


def _npz(spec: str) -> Any:
    """The arrays of a ``.npz`` data file, checked to hold x and y."""
    import numpy as np
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"data file {path} does not exist")
    arrays = np.load(path)
    missing = {"x", "y"} - set(arrays.files)
    if missing:
        raise UsageError(f"{path} must hold arrays named x and y (missing "
                         f"{sorted(missing)}); optional x_val, y_val")
    return arrays


def _fraction(val_split: float | None) -> float:
    split = DEFAULT_VAL_SPLIT if val_split is None else val_split
    if not 0.0 < split < 1.0:
        raise UsageError(f"val_split={split} must be between 0 and 1 (the fraction of the data "
                         f"held out for validation)")
    return split


def held_out(spec: str, val_split: float | None) -> float | None:
    """The fraction of ``spec``'s rows held out for validation (``val_split``, else 0.2), or
    None where the data brings its own validation part: there a val_split= would be ignored,
    so it is an error instead."""
    if spec in _SPLIT_DATA or (spec.endswith(".npz") and "x_val" not in _npz(spec).files):
        if val_split == 0 and spec.endswith(".npz"):
            return 0.0  # a file trained on whole, without validation, as it asked
        return _fraction(val_split)
    if val_split is None:
        return None
    if spec.endswith(".npz"):
        raise UsageError(f"val_split={val_split} conflicts with {spec}'s own validation arrays "
                         f"x_val, y_val; drop val_split= to validate on them, or save the file "
                         f"without x_val, y_val to hold out part of x, y")
    raise UsageError(f"val_split={val_split} cannot apply to data={spec!r}: the function returns "
                     f"its own (train, val); drop val_split= or split in the function")


def _split_rows(x: Any, y: Any, val_split: float, seed: int, name: str) -> tuple[Any, Any]:
    """``(x, y)`` shuffled by ``seed`` and cut as the digits are, so the same options hold out
    the same rows."""
    import torch
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed)).numpy()
    cut = int(len(x) * (1 - val_split))
    if cut == 0 or cut == len(x):
        raise UsageError(f"val_split={val_split} of the {len(x)} rows of {name} leaves "
                         f"{'no training' if cut == 0 else 'no validation'} rows; give a "
                         f"val_split that keeps both parts")
    train, val = order[:cut], order[cut:]
    return (x[train], y[train]), (x[val], y[val])


def load_data(spec: str, val_split: float | None = None, seed: int = 0) -> tuple[Any, Any]:
    """``digits``, ``shapes`` (generated images with boxes, for ``shapes_detector``), an
    ``.npz`` file (x, y and optionally x_val, y_val) or ``module:function`` (or
    ``file.py:function``) returning ``(train, val)``, each ``(x, y)`` or None. ``val_split``
    (default 0.2) of the rows, shuffled by ``seed``, is held out where the data has no
    validation part of its own; ``val_split=0`` trains on a whole ``.npz`` file."""
    if spec not in _SPLIT_DATA and not spec.endswith(".npz") and ":" not in spec:
        raise UsageError(f"unknown data {spec!r}; use 'digits', 'shapes', a .npz file (arrays x, y, "
                         f"optional x_val, y_val) or module:function / file.py:function "
                         f"returning (train, val)")
    if spec == "digits":
        from hookline.demo import load_digits_data
        return load_digits_data(val_fraction=_fraction(val_split), seed=seed)
    if spec == "shapes":
        from hookline.detection import load_shapes_data
        return load_shapes_data(val_fraction=_fraction(val_split), seed=seed)
    split = held_out(spec, val_split)  # raises when a given val_split= cannot apply
    if spec.endswith(".npz"):
        arrays = _npz(spec)
        if split == 0:
            return (arrays["x"], arrays["y"]), None
        if split is not None:
            return _split_rows(arrays["x"], arrays["y"], split, seed, spec)
        return (arrays["x"], arrays["y"]), (arrays["x_val"], arrays["y_val"])
    loaded = load_object(spec, "data")()
    if not (isinstance(loaded, tuple) and len(loaded) == 2):
        raise UsageError(f"data={spec!r} must return (train, val), got "
                         f"{type(loaded).__name__}")
    return loaded


def _info(state: dict[str, Any] | None) -> dict[str, Any]:
    return (state or {}).get(BUILD_KEY) or {}


def _data_spec(spec: str) -> str:
    """``spec`` as a weights file records it: a file's path made absolute, so that ``val`` finds
    it from any folder and recognises the same file given by another path."""
    if spec.endswith(".npz"):
        return str(Path(spec).resolve())
    target = spec.rpartition(":")[0]
    if target.endswith(".py") or "/" in target:
        return _file_spec(spec) or spec
    return spec


def recorded_split(spec: str, state: dict[str, Any] | None, val_split: float | None,
                   seed: int | None) -> tuple[float | None, int]:
    """``val_split`` and ``seed`` as given, else as training split ``spec`` when the weights
    file records training on it (so val sees the rows training held out), else the defaults
    (None, 0); weights from before the split was recorded get the defaults."""
    info = _info(state)
    if info.get("data") is not None and info["data"] == _data_spec(spec):
        val_split = info.get("val_split") if val_split is None else val_split
        seed = info.get("seed") if seed is None else seed
    return val_split, 0 if seed is None else seed


def data_for(spec: str | None, state: dict[str, Any] | None, val_split: float | None,
             seed: int | None) -> tuple[Any, Any]:
    """``(train, val)`` of ``data=``, else of the data the weights file records (else digits),
    split as training split it unless ``val_split=`` or ``seed=`` say otherwise."""
    info = _info(state)
    chosen = spec or info.get("data") or "digits"
    split, split_seed = recorded_split(chosen, state, val_split, seed)
    if spec is not None or "data_file" not in info:
        return load_data(chosen, split, split_seed)
    try:
        return load_data(chosen, split, split_seed)
    except UsageError:  # a module of the folder training ran in: its file, from anywhere
        return load_data(info["data_file"], split, split_seed)


def load_source(source: str, val_split: float | None = None, seed: int = 0) -> Any:
    """Inputs to predict: ``digits`` (the validation images) or a ``.npy`` file."""
    if source == "digits":
        return load_data("digits", val_split, seed)[1][0]
    if source.endswith(".npy"):
        import numpy as np
        if val_split is not None:
            raise UsageError(f"val_split={val_split} cannot apply to source={source}: a .npy "
                             f"file's inputs are all predicted; drop val_split=")
        path = Path(source)
        if not path.is_file():
            raise UsageError(f"source file {path} does not exist")
        return np.load(path)
    raise UsageError(f"source must be 'digits' or a .npy file of inputs, got {source!r}")


def build_info(model_spec: str, train_data: Any, data: str | None = None,
               val_split: float | None = None, seed: int | None = None, *,
               loss: str | None = DEFAULT_LOSS) -> dict[str, Any]:
    """What a weights file records so val/predict/export can rebuild the model and an input,
    val/predict can split ``data`` as training did (``val_split``: the fraction held out,
    None where the data brought its own validation part; ``seed``: the split's seed) and val
    can score with the training's loss (``loss``: None where the model computes its own)."""
    info: dict[str, Any] = {"model": model_spec, "loss": loss}
    file_spec = _file_spec(model_spec) if model_spec not in MODELS else None
    if file_spec:
        info["model_file"] = file_spec
    x = train_data[0] if isinstance(train_data, (tuple, list)) and train_data else None
    shape, dtype = getattr(x, "shape", None), getattr(x, "dtype", None)
    if shape is not None and dtype is not None and len(shape) >= 1:
        info["input_shape"] = [int(size) for size in shape[1:]]
        info["input_dtype"] = str(dtype).removeprefix("torch.")
    if data is not None:
        info.update(data=_data_spec(data), val_split=val_split, seed=seed)
        data_file = _file_spec(data) if ":" in data else None
        if data_file and data_file != info["data"]:
            info["data_file"] = data_file
    return info


def read_weights(path: str | None) -> dict[str, Any] | None:
    """The weights file's contents (weights-only unpickling), or None without ``weights=``."""
    if path is None:
        return None
    if Path(path).is_dir():
        raise UsageError(f"weights={path} is a folder, not a weights file; pass a file: "
                         f"{_weights_in(Path(path))}")
    if not Path(path).is_file():
        raise UsageError(f"weights file {path} does not exist")
    from hookline.checkpoint import load_weights
    return load_weights(path)


def _weights_in(folder: Path) -> str:
    """The weights files a run folder holds (its own or its weights/), as the fix to offer."""
    found = sorted(folder.glob("*.pt")) + sorted(folder.glob("weights/*.pt"))
    if found:
        return " or ".join(f"weights={file}" for file in found[:3])
    return f"e.g. weights={folder / 'weights' / 'best.pt'} (a train run writes weights/best.pt)"


def model_for(spec: str | None, state: dict[str, Any] | None) -> Any:
    """The model ``model=`` names, else the one the weights file records, with its weights."""
    info = _info(state)
    if spec is None and info:
        try:
            model = build_model(info["model"])
        except UsageError:
            if "model_file" not in info:
                raise
            model = build_model(info["model_file"])
    else:
        model = build_model(spec or "digits_cnn")
    if state is not None:
        from hookline.checkpoint import check_model_state
        model.load_state_dict(check_model_state(model, state.get("model", state)))
    return model


def own_step(model: Any, kind: str) -> bool:
    """Whether ``model`` declares its own ``training_step`` / ``validation_step`` (the
    detector), which computes its loss and unpacks its batches itself."""
    return callable(getattr(model, kind, None))


def recorded_loss(loss: str | None, state: dict[str, Any] | None, model: Any) -> str | None:
    """The loss val scores with: ``loss=`` as given, else the one training recorded (None: the
    model's own), else none for a model with its own validation step, else cross_entropy
    (weights written before the loss was recorded)."""
    if loss is not None:
        return loss
    info = _info(state)
    if "loss" in info:
        return info["loss"]
    return None if own_step(model, "validation_step") else DEFAULT_LOSS


def example_input(data: str | None, state: dict[str, Any] | None, seed: int = 0,
                  model: Any = None) -> Any:
    """One input batch to trace an export with: from ``data=`` (its first rows, or the first
    batch of its loader), else the recorded shape; ``model`` is the model exported."""
    import torch

    info = _info(state)
    if data is None and "input_shape" in info:
        dtype = getattr(torch, info.get("input_dtype", "float32"), torch.float32)
        return torch.zeros((1, *info["input_shape"]), dtype=dtype)
    spec = data or "digits"
    train = load_data(spec, seed=seed)[0]
    if isinstance(train, (tuple, list)):
        x = train[0][:1]
        return x if isinstance(x, torch.Tensor) else torch.as_tensor(x)
    return _first_inputs(spec, train, model)


def _first_inputs(spec: str, batches: Any, model: Any) -> Any:
    """The model's inputs in the first batch of ``batches`` (a DataLoader), by the batch rules
    training uses; refused for a model whose own training step unpacks its batches."""
    if own_step(model, "training_step"):
        raise UsageError(f"data={spec!r}: the model's own training_step decides what it is "
                         f"called with, so its inputs cannot be read from a batch; drop data= "
                         f"to export with the input recorded in weights=")
    from hookline.structure import unpack_batch
    try:
        first = next(iter(batches))
    except StopIteration:
        raise UsageError(f"data={spec!r} has no training batch to take an input from") from None
    args, kwargs, _, _ = unpack_batch(first)
    if args and kwargs:
        raise UsageError(f"data={spec!r}: its batches call the model with positional and named "
                         f"inputs together, which export takes only from weights=; drop data=")
    if kwargs:
        return kwargs
    return args[0] if len(args) == 1 else args
