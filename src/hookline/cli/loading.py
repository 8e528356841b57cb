"""What ``model=``, ``data=``, ``source=`` and ``weights=`` name, loaded into Python objects.

A spec ``module:attribute`` is imported with the current folder on the import path (so
``model=mymodel:build`` finds ``./mymodel.py`` as ``python -m`` would); ``path/file.py:attribute``
loads that file. ``hookline train`` records in every weights file how to rebuild the model and
the shape of one input (``build_info``), so ``val``, ``predict`` and ``export`` need only
``weights=``.
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

__all__ = ["BUILD_KEY", "MODELS", "build_info", "build_model", "example_input", "load_data",
           "load_object", "load_source", "read_weights"]

# built-in model names -> (module, factory)
MODELS = {"digits_cnn": ("hookline.demo", "digits_cnn"),
          "shapes_detector": ("hookline.detection", "shapes_detector")}
# the key of a weights file that holds build_info()
BUILD_KEY = "hookline_build"


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


def load_data(spec: str, val_split: float = 0.2, seed: int = 0) -> tuple[Any, Any]:
    """``digits``, ``shapes`` (generated images with boxes, for ``shapes_detector``), an
    ``.npz`` file (x, y and optionally x_val, y_val) or ``module:function`` (or
    ``file.py:function``) returning ``(train, val)``, each ``(x, y)`` or None."""
    if spec == "digits":
        from hookline.demo import load_digits_data
        return load_digits_data(val_fraction=val_split, seed=seed)
    if spec == "shapes":
        from hookline.detection import load_shapes_data
        return load_shapes_data(val_fraction=val_split, seed=seed)
    if spec.endswith(".npz"):
        import numpy as np
        path = Path(spec)
        if not path.is_file():
            raise UsageError(f"data file {path} does not exist")
        arrays = np.load(path)
        missing = {"x", "y"} - set(arrays.files)
        if missing:
            raise UsageError(f"{path} must hold arrays named x and y (missing "
                             f"{sorted(missing)}); optional x_val, y_val")
        train = (arrays["x"], arrays["y"])
        val = (arrays["x_val"], arrays["y_val"]) if "x_val" in arrays.files else None
        return train, val
    if ":" not in spec:
        raise UsageError(f"unknown data {spec!r}; use 'digits', 'shapes', a .npz file (arrays x, y, "
                         f"optional x_val, y_val) or module:function / file.py:function "
                         f"returning (train, val)")
    loaded = load_object(spec, "data")()
    if not (isinstance(loaded, tuple) and len(loaded) == 2):
        raise UsageError(f"data={spec!r} must return (train, val), got "
                         f"{type(loaded).__name__}")
    return loaded


def load_source(source: str, seed: int = 0) -> Any:
    """Inputs to predict: ``digits`` (the validation images) or a ``.npy`` file."""
    if source == "digits":
        return load_data("digits", seed=seed)[1][0]
    if source.endswith(".npy"):
        import numpy as np
        path = Path(source)
        if not path.is_file():
            raise UsageError(f"source file {path} does not exist")
        return np.load(path)
    raise UsageError(f"source must be 'digits' or a .npy file of inputs, got {source!r}")


def build_info(model_spec: str, train_data: Any) -> dict[str, Any]:
    """What a weights file records so predict/export can rebuild the model and an input."""
    info: dict[str, Any] = {"model": model_spec}
    file_spec = _file_spec(model_spec) if model_spec not in MODELS else None
    if file_spec:
        info["model_file"] = file_spec
    x = train_data[0] if isinstance(train_data, (tuple, list)) and train_data else None
    shape, dtype = getattr(x, "shape", None), getattr(x, "dtype", None)
    if shape is not None and dtype is not None and len(shape) >= 1:
        info["input_shape"] = [int(size) for size in shape[1:]]
        info["input_dtype"] = str(dtype).removeprefix("torch.")
    return info


def read_weights(path: str | None) -> dict[str, Any] | None:
    """The weights file's contents (weights-only unpickling), or None without ``weights=``."""
    if path is None:
        return None
    if not Path(path).is_file():
        raise UsageError(f"weights file {path} does not exist")
    from hookline.checkpoint import load_weights
    return load_weights(path)


def model_for(spec: str | None, state: dict[str, Any] | None) -> Any:
    """The model ``model=`` names, else the one the weights file records, with its weights."""
    info = (state or {}).get(BUILD_KEY) or {}
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
        weights = state.get("model", state)
        check_model_state(model, weights)
        model.load_state_dict(weights)
    return model


def example_input(data: str | None, state: dict[str, Any] | None, seed: int = 0) -> Any:
    """One input batch to trace an export with: from ``data=``, else the recorded shape."""
    import torch

    info = (state or {}).get(BUILD_KEY) or {}
    if data is None and "input_shape" in info:
        dtype = getattr(torch, info.get("input_dtype", "float32"), torch.float32)
        return torch.zeros((1, *info["input_shape"]), dtype=dtype)
    x = load_data(data or "digits", seed=seed)[0][0][:1]
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(x)
