"""The tasks of the ``hookline`` command: their signatures are the options' types and defaults.

Each task is a plain function; the parser (``hookline.cli.parser``) derives the typed
``key=value`` options from its signature and their one-line help from ``OPTION_HELP`` (a
task's own wording of an option in ``TASK_OPTION_HELP``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from hookline.callback import Callback
from hookline.cli.errors import UsageError
from hookline.cli.loading import (
    BUILD_KEY,
    build_info,
    build_model,
    data_for,
    example_input,
    held_out,
    load_data,
    load_source,
    model_for,
    own_step,
    read_weights,
    recorded_loss,
    recorded_split,
)
from hookline.cli.run_args import ArgsWriter
from hookline.cli.run_dir import latest_run_dir, next_run_dir

__all__ = ["OPTION_HELP", "TASKS", "TASK_OPTION_HELP", "check_task", "demo", "events", "export",
           "option_help", "predict", "train", "val"]

Optimizer = Literal["adam", "adamw", "sgd", "rmsprop", "adagrad"]
Precision = Literal["32", "bf16", "fp16"]
Verbose = Literal[0, 1, 2]
ExportFormat = Literal["onnx", "torchscript", "safetensors", "pt"]

OPTION_HELP = {
    "model": "a built-in (digits_cnn), package.module:factory or file.py:factory; "
             "val/predict/export default to the model recorded in weights=",
    "data": "digits, a .npz file (x, y, optional x_val, y_val) or module:function / "
            "file.py:function returning (train, val); val defaults to the data recorded in "
            "weights=",
    "weights": "a weights file (e.g. runs/train/weights/best.pt) to start from or evaluate",
    "epochs": "epochs to train",
    "batch_size": "samples per batch",
    "lr": "learning rate of the optimizer",
    "optimizer": "the optimizer, by name",
    "loss": "the loss, by name (cross_entropy, mse, bce_with_logits, ...)",
    "patience": "stop after this many epochs without a better val_loss (None: never)",
    "save_dir": "the run folder; default runs/train, then runs/train2, ... (new each run)",
    "exist_ok": "write into save_dir even when it exists (a new run replaces its files, "
                "TensorBoard events included)",
    "resume": "True: continue the newest run (or save_dir) from its backup; or a checkpoint",
    "val_split": "fraction of the data held out for validation (None: 0.2, or a .npz file's "
                 "x_val, y_val); val/predict default to the split recorded in weights=",
    "accumulate": "batches per optimizer step (gradient accumulation)",
    "clip_grad_norm": "clip the gradients' norm to this before each step (None: no clipping)",
    "freeze": "freeze the first N top-level blocks, or a list of block indexes and "
              "parameter-name prefixes",
    "plots": "draw results.png when training ends",
    "tensorboard": "write TensorBoard events to <save_dir>/tensorboard",
    "device": "auto (CUDA when present), cpu, cuda, cuda:N or mps",
    "precision": "32, bf16 or fp16 (autocast)",
    "seed": "seeds python, numpy and torch (None: a random run) and the validation split; "
            "val/predict default to the split's seed recorded in weights=",
    "verbose": "0 silent, 1 progress bar, 2 one line per epoch",
    "callbacks": "extra callbacks, e.g. [{class_path: EarlyStopping, init_args: {patience: 3}}]",
    "loggers": "tracking loggers, e.g. [{class_path: MLflowLogger, init_args: {...}}]",
    "source": "inputs to predict: digits or a .npy file",
    "save": "write predictions.csv into save_dir",
    "format": "the export format",
    "file": "the exported file (default: model.<format> in the current folder)",
    "markdown": "print the catalogue as the Markdown table of docs/events.md",
}
# where an option means something else in one task (its own default folder)
TASK_OPTION_HELP = {
    "predict": {"save_dir": "the folder of predictions.csv; default runs/predict, then "
                            "runs/predict2, ... (new each run)"},
    "demo": {"save_dir": "the demo's run folder (written into as it is)",
             "patience": "stop after this many epochs without a better val_loss",
             "seed": "seeds python, numpy and torch, and the validation split"},
    "export": {"seed": "seeds the split of data= whose first training row traces the model "
                       "(used only when weights= records no input signature)"},
    "val": {"loss": "the loss, by name; default: the one recorded in weights= (the model's own "
                    "for a model with its own validation_step), else cross_entropy"},
}


def option_help(task: str, name: str) -> str:
    """The one-line help of ``task``'s option ``name``: the task's own, else the shared one."""
    return TASK_OPTION_HELP.get(task, {}).get(name) or OPTION_HELP.get(name, "")


def _format(metrics: dict[str, Any]) -> str:
    return " - ".join(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}"
                      for k, v in metrics.items())


def resumed_run_dir(save_dir: str | None, default: str) -> Path:
    """The run ``resume=True`` continues: ``save_dir``, else the newest run of ``default``."""
    if save_dir is not None:
        return Path(save_dir)
    latest = latest_run_dir(default)
    if latest is None:
        raise UsageError(f"resume=True: there is no run in {default} to resume; give "
                         f"save_dir= of the run, or start one without resume")
    return latest


def _run_dir(save_dir: str | None, resume: bool | str, exist_ok: bool,
             default: str) -> Path:
    if resume is True:
        return resumed_run_dir(save_dir, default)
    if save_dir is not None and resume:
        return Path(save_dir)
    return next_run_dir(save_dir or default, exist_ok=exist_ok)


def _train_callbacks(save_dir: Path, *, resume: bool | str, patience: int | None, plots: bool,
                     tensorboard: bool) -> list[Any]:
    from hookline import callbacks, loggers
    chosen: list[Any] = [callbacks.CSVLogger(save_dir / "results.csv", append=bool(resume)),
                         # kept when the run ends so that resume=True can also extend it;
                         # a run that is not resuming clears it (auto_resume=False)
                         callbacks.BackupAndRestore(save_dir / "backup",
                                                    delete_checkpoint=False,
                                                    auto_resume=False)]
    if patience is not None:
        chosen.append(callbacks.EarlyStopping(monitor="val_loss", patience=patience))
    if plots:
        chosen.append(loggers.PlotResults(save_dir / "results.png"))
    if tensorboard:
        chosen.append(loggers.TensorBoard(log_dir=save_dir / "tensorboard"))
    return chosen


def _clear_event_files(folder: Path) -> None:
    """Remove an earlier run's TensorBoard event files (exist_ok=True reuses its folder), so
    the new run's curves are not drawn over the old run's at the same steps."""
    for path in folder.glob("events.out.tfevents.*"):
        path.unlink()


def train(model: str = "digits_cnn", data: str = "digits", weights: str | None = None,
          epochs: int = 10, batch_size: int = 64, lr: float = 1e-3,
          optimizer: Optimizer = "adam", loss: str = "cross_entropy",
          patience: int | None = None, save_dir: str | None = None, exist_ok: bool = False,
          resume: bool | str = False, val_split: float | None = None, accumulate: int = 1,
          clip_grad_norm: float | None = None, freeze: int | list[int | str] | None = None,
          plots: bool = True, tensorboard: bool = False, device: str = "auto",
          precision: Precision = "32", seed: int | None = 0, verbose: Verbose = 1,
          callbacks: list[Callback] | None = None,
          loggers: list[Callback] | None = None) -> None:
    """Train a model; weights, results.csv, results.png and a backup go to the run folder."""
    import torch

    from hookline import Trainer
    run_dir = _run_dir(save_dir, resume, exist_ok, "runs/train")
    if seed is not None:
        torch.manual_seed(seed)  # the model's initial weights follow seed= too
    net = build_model(model)
    state = None if resume else read_weights(weights)  # a resume restores the weights itself
    if state is not None:
        from hookline.checkpoint import check_model_state
        net.load_state_dict(check_model_state(net, state.get("model", state), weights))
    train_data, val_data = load_data(data, val_split, seed or 0)
    split = held_out(data, val_split)  # recorded, so that val validates on the same rows
    # a model that declares its training step (the detector) computes its own loss
    own_loss = own_step(net, "training_step")
    trainer = Trainer(net, optimizer=optimizer, lr=lr, loss=None if own_loss else loss,
                      train_data=train_data,
                      val_data=val_data, epochs=epochs, batch_size=batch_size, seed=seed,
                      device=device, precision=precision, accumulate=accumulate,
                      clip_grad_norm=clip_grad_norm, freeze=freeze, save_dir=run_dir,
                      verbose=verbose, resume=resume or None,
                      callbacks=[*_train_callbacks(run_dir, resume=resume, patience=patience,
                                                   plots=plots, tensorboard=tensorboard),
                                 *(callbacks or []), *(loggers or []), ArgsWriter(run_dir)])
    trainer.weights_meta = {BUILD_KEY: build_info(model, train_data, data, split, seed or 0,
                                                  loss=None if own_loss else loss)}
    if tensorboard and not resume:  # a new run replaces its folder's files, events included
        _clear_event_files(run_dir / "tensorboard")
    metrics = trainer.fit()
    print(f"done: {_format(metrics)}; weights in {run_dir / 'weights'}")


def val(model: str | None = None, weights: str | None = None, data: str | None = None,
        loss: str | None = None, batch_size: int = 64, device: str = "auto",
        val_split: float | None = None, seed: int | None = None) -> None:
    """Validate weights on the validation part of data= and print the metrics."""
    from hookline import Validator
    state = read_weights(weights)
    net = model_for(model, state)
    _, val_data = data_for(data, state, val_split, seed)
    if val_data is None:
        named = f"data={data!r}" if data else "the data recorded in weights="
        raise UsageError(f"{named} has no validation part (x_val, y_val) to validate on")
    # the training's loss and metrics: a model with its own validation_step (the detector)
    # scores itself, as it did in training
    metrics = Validator(net, data=val_data, loss=recorded_loss(loss, state, net), device=device,
                        batch_size=batch_size).validate()
    print(_format(metrics))


def predict(model: str | None = None, weights: str | None = None, source: str = "digits",
            save_dir: str | None = None, exist_ok: bool = False, save: bool = True,
            batch_size: int = 64, device: str = "auto", val_split: float | None = None,
            seed: int | None = None) -> None:
    """Predict source= with weights= and write predictions.csv into the run folder."""
    from hookline import Predictor
    if seed is not None and source.endswith(".npy"):
        raise UsageError(f"seed={seed} cannot apply to source={source}: a .npy file's inputs "
                         f"are all predicted, in order; drop seed=")
    state = read_weights(weights)
    net = model_for(model, state)
    inputs = load_source(source, *recorded_split(source, state, val_split, seed))
    run_dir = next_run_dir(save_dir or "runs/predict", exist_ok=exist_ok)
    predictor = Predictor(net, device=device, batch_size=batch_size, save=save,
                          save_dir=run_dir)
    results = predictor(inputs)
    print(f"{len(results)} predictions; saved {predictor.saved} rows to "
          f"{run_dir / 'predictions.csv'}")


def export(model: str | None = None, weights: str | None = None, data: str | None = None,
           format: ExportFormat = "onnx", file: str | None = None, seed: int = 0) -> None:
    """Export weights= to a file; ONNX and TorchScript are checked against PyTorch."""
    from hookline import Exporter
    state = read_weights(weights)
    net = model_for(model, state)
    traced = format in ("onnx", "torchscript")
    # the inputs fit recorded (every input's shape and dtype), unless data= names others
    signature = (state or {}).get("input_signature") if traced and data is None else None
    example = example_input(data, state, seed, net) if traced and signature is None else None
    exporter = Exporter(net, format=format, file=file, example_input=example,
                        signature=signature)
    print(f"exported {exporter.export()}")


def demo(save_dir: str = "runs/demo", epochs: int = 20, patience: int = 5, seed: int = 0,
         verbose: Verbose = 1, device: str = "auto") -> None:
    """Train the digits CNN with the usual callbacks (scikit-learn's digits, no download)."""
    from hookline.demo import run_demo
    run_demo(save_dir, epochs=epochs, patience=patience, seed=seed, verbose=verbose,
             device=device)


def events(markdown: bool = False) -> None:
    """Print the event catalogue: every event, the run it belongs to, and when it fires."""
    from hookline.events import EVENTS, catalogue_markdown
    if markdown:
        print(catalogue_markdown(), end="")
        return
    for event in EVENTS:
        print(f"{event.name:28} {event.run:8} {event.when}")


TASKS: dict[str, Callable[..., None]] = {
    "train": train, "val": val, "predict": predict, "export": export, "demo": demo,
    "events": events,
}


def check_task(task: str) -> None:
    """Raise UsageError, with the nearest task names, unless ``task`` is one."""
    if task not in TASKS:
        close = difflib.get_close_matches(task, list(TASKS), n=2)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise UsageError(f"unknown task {task!r}.{hint} Tasks: {', '.join(TASKS)}")
