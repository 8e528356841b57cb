"""The command line: ``hookline TASK key=value ...`` (Ultralytics' style), plus a YAML config.

Tasks: ``demo``, ``train``, ``val``, ``predict``, ``export``, ``events``. Examples::

    hookline demo
    hookline train model=digits_cnn data=digits epochs=20 patience=5 save_dir=runs/exp
    hookline train cfg=run.yaml resume=True
    hookline val model=digits_cnn weights=runs/exp/weights/best.pt data=digits
    hookline predict model=digits_cnn weights=runs/exp/weights/best.pt source=digits
    hookline export model=digits_cnn weights=runs/exp/weights/best.pt format=onnx

``train`` backs the run up in ``<save_dir>/backup`` after every epoch and keeps the backup when
it ends. ``resume=True`` continues from the newest checkpoint under save_dir: after a crash, or
to extend a finished run (``epochs=`` larger). Give the same options as the run it continues
(model, data, batch_size...) plus ``resume=True``; without ``resume`` a run starts anew.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "parse_options"]

_COMMON = {"model": "digits_cnn", "data": "digits", "weights": None, "device": "auto",
           "batch_size": 64, "seed": 0, "verbose": 1, "cfg": None, "precision": "32"}
_TASK_OPTIONS: dict[str, dict[str, Any]] = {
    "demo": {"save_dir": "runs/demo", "epochs": 20, "patience": 5, "seed": 0, "verbose": 1,
             "device": "auto"},
    "train": {**_COMMON, "epochs": 10, "lr": 1e-3, "optimizer": "adam",
              "loss": "cross_entropy", "patience": None, "save_dir": "runs/train",
              "resume": None, "val_split": 0.2, "accumulate": 1, "clip_grad_norm": None,
              "plots": True, "tensorboard": False, "freeze": None},
    "val": {**_COMMON, "loss": "cross_entropy"},
    "predict": {**_COMMON, "source": "digits", "save_dir": "runs/predict", "save": True},
    "export": {**_COMMON, "format": "onnx", "file": None},
    "events": {"markdown": False},
}
_MODELS = {"digits_cnn": ("hookline.demo", "digits_cnn")}


class UsageError(ValueError):
    """A command-line mistake: printed without a traceback, exit status 2."""


def parse_options(task: str, words: Sequence[str]) -> dict[str, Any]:
    """``key=value`` words (and a ``cfg=`` YAML file) over the task's defaults."""
    if task not in _TASK_OPTIONS:
        close = difflib.get_close_matches(task, list(_TASK_OPTIONS), n=2)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise UsageError(f"unknown task {task!r}.{hint} Tasks: {', '.join(_TASK_OPTIONS)}")
    defaults = _TASK_OPTIONS[task]
    given: dict[str, Any] = {}
    for word in words:
        key, sep, raw = word.partition("=")
        if word.startswith("--") and not sep:
            key, raw, sep = word[2:], "True", "="
        if not sep or not key:
            raise UsageError(f"arguments are key=value pairs, got {word!r} "
                             f"(e.g. epochs=10)")
        given[key.replace("-", "_")] = _literal(raw)
    config_path = given.get("cfg")
    options = dict(defaults)
    if config_path:
        options.update(_load_yaml(Path(config_path)))
    options.update(given)
    for key in options:
        if key not in defaults:
            close = difflib.get_close_matches(key, list(defaults), n=2)
            hint = f" Did you mean {' or '.join(close)}?" if close else ""
            raise UsageError(f"unknown option {key!r} for {task}.{hint} "
                             f"Options: {', '.join(sorted(defaults))}")
    return options


def _literal(raw: str) -> Any:
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return {"true": True, "false": False, "none": None}.get(raw.lower(), raw)


def _load_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UsageError(f"config file {path} does not exist")
    try:
        import yaml
    except ImportError as error:
        raise UsageError("cfg= needs PyYAML: pip install pyyaml") from error
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict):
        raise UsageError(f"{path} must hold a mapping of option: value")
    return loaded


def _build_model(spec: str) -> Any:
    """A model from a built-in name or ``package.module:factory``."""
    module_name, _, attribute = spec.partition(":")
    if spec in _MODELS:
        module_name, attribute = _MODELS[spec]
    elif not attribute:
        raise UsageError(f"unknown model {spec!r}; use one of {sorted(_MODELS)} or "
                         f"'package.module:factory' (a function returning an nn.Module)")
    factory = getattr(importlib.import_module(module_name), attribute)
    return factory()


def _load_data(spec: str, val_split: float = 0.2, seed: int = 0) -> tuple[Any, Any]:
    """``digits``, an ``.npz`` file (x, y and optionally x_val, y_val) or ``module:function``."""
    if spec == "digits":
        from hookline.demo import load_digits_data
        return load_digits_data(val_fraction=val_split, seed=seed)
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
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        raise UsageError(f"unknown data {spec!r}; use 'digits', a .npz file or "
                         f"'package.module:function' returning (train, val)")
    return getattr(importlib.import_module(module_name), attribute)()


def _load_weights(model: Any, weights: str | None) -> None:
    if weights is None:
        return
    from hookline.checkpoint import load_weights
    state = load_weights(weights)
    model.load_state_dict(state.get("model", state))


def _train_callbacks(options: dict[str, Any]) -> list[Any]:
    from hookline import callbacks, loggers
    save_dir = Path(options["save_dir"])
    chosen: list[Any] = [callbacks.CSVLogger(save_dir / "results.csv",
                                             append=bool(options["resume"])),
                         # kept when the run ends so that resume=True can also extend it;
                         # a run that is not resuming clears it (auto_resume=False)
                         callbacks.BackupAndRestore(save_dir / "backup",
                                                    delete_checkpoint=False,
                                                    auto_resume=False)]
    if options["patience"] is not None:
        chosen.append(callbacks.EarlyStopping(monitor="val_loss",
                                              patience=int(options["patience"])))
    if options["plots"]:
        chosen.append(loggers.PlotResults(save_dir / "results.png"))
    if options["tensorboard"]:
        chosen.append(loggers.TensorBoard(log_dir=save_dir / "tensorboard"))
    return chosen


def _task_train(options: dict[str, Any]) -> None:
    import torch

    from hookline import Trainer
    if options["seed"] is not None:
        torch.manual_seed(options["seed"])  # the model's initial weights follow seed= too
    model = _build_model(options["model"])
    _load_weights(model, options["weights"])
    train, val = _load_data(options["data"], options["val_split"], options["seed"])
    trainer = Trainer(model, optimizer=options["optimizer"], lr=options["lr"],
                      loss=options["loss"], train_data=train, val_data=val,
                      epochs=options["epochs"], batch_size=options["batch_size"],
                      seed=options["seed"], device=options["device"],
                      precision=options["precision"], accumulate=options["accumulate"],
                      clip_grad_norm=options["clip_grad_norm"], freeze=options["freeze"],
                      save_dir=options["save_dir"], verbose=options["verbose"],
                      resume=options["resume"], callbacks=_train_callbacks(options))
    metrics = trainer.fit()
    print(f"done: {_format(metrics)}; weights in {Path(options['save_dir']) / 'weights'}")


def _task_val(options: dict[str, Any]) -> None:
    from hookline import Validator
    model = _build_model(options["model"])
    _load_weights(model, options["weights"])
    _, val = _load_data(options["data"], seed=options["seed"])
    metrics = Validator(model, data=val, loss=options["loss"], device=options["device"],
                        batch_size=options["batch_size"]).validate()
    print(_format(metrics))


def _task_predict(options: dict[str, Any]) -> None:
    from hookline import Predictor
    model = _build_model(options["model"])
    _load_weights(model, options["weights"])
    source = options["source"]
    if source == "digits":
        source = _load_data("digits", seed=options["seed"])[1][0]
    elif str(source).endswith(".npy"):
        import numpy as np
        source = np.load(source)
    else:
        raise UsageError(f"source must be 'digits' or a .npy file of inputs, got {source!r}")
    predictor = Predictor(model, device=options["device"], batch_size=options["batch_size"],
                          save=options["save"], save_dir=options["save_dir"])
    results = predictor(source)
    print(f"{len(results)} predictions; saved {predictor.saved} rows to "
          f"{Path(options['save_dir']) / 'predictions.csv'}")


def _task_export(options: dict[str, Any]) -> None:
    from hookline import Exporter
    model = _build_model(options["model"])
    _load_weights(model, options["weights"])
    example = _load_data(options["data"], seed=options["seed"])[0][0][:1] \
        if options["format"] in ("onnx", "torchscript") else None
    exporter = Exporter(model, format=options["format"], file=options["file"],
                        example_input=None if example is None else _tensor(example))
    print(f"exported {exporter.export()}")


def _task_demo(options: dict[str, Any]) -> None:
    from hookline.demo import run_demo
    run_demo(options["save_dir"], epochs=options["epochs"], patience=options["patience"],
             seed=options["seed"], verbose=options["verbose"], device=options["device"])


def _task_events(options: dict[str, Any]) -> None:
    from hookline.events import EVENTS, catalogue_markdown
    if options["markdown"]:
        print(catalogue_markdown(), end="")
        return
    for event in EVENTS:
        print(f"{event.name:28} {event.run:8} {event.when}")


def _tensor(value: Any) -> Any:
    import torch
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(value)


def _format(metrics: dict[str, Any]) -> str:
    return " - ".join(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}"
                      for k, v in metrics.items())


_TASKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "demo": _task_demo, "train": _task_train, "val": _task_val, "predict": _task_predict,
    "export": _task_export, "events": _task_events,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hookline`` console script."""
    words = list(sys.argv[1:] if argv is None else argv)
    if not words or words[0] in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    try:
        options = parse_options(words[0], words[1:])
        _TASKS[words[0]](options)
    except UsageError as error:
        print(f"hookline: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
