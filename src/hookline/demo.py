"""The demo: a small CNN on scikit-learn's bundled digits (8x8 images), no download.

``hookline demo`` trains it with a validation split and the built-in callbacks a practitioner
would use, and leaves a run folder behind: weights, a per-epoch results CSV, TensorBoard
events and a plot of the curves.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["digits_cnn", "load_digits_data", "run_demo"]


def load_digits_data(val_fraction: float = 0.2, seed: int = 0) -> tuple[tuple, tuple]:
    """The 1,797 digits as ``((x_train, y_train), (x_val, y_val))``, images shaped (1, 8, 8)."""
    images, target = _digits()
    x = torch.tensor(images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(target, dtype=torch.int64)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    x, y = x[order], y[order]
    cut = int(len(x) * (1 - val_fraction))
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def _digits() -> tuple[Any, Any]:
    """scikit-learn's bundled digits as (images (N, 8, 8), targets), read from its data file
    when it is where scikit-learn keeps it: importing ``sklearn.datasets`` takes about 1.7 s
    (scipy and pandas come with it), most of the start of a CLI command on the digits."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None:
        raise ImportError("the demo data ships with scikit-learn: pip install 'hookline[demo]'")
    folders = list(spec.submodule_search_locations or [])
    path = Path(folders[0]) / "datasets" / "data" / "digits.csv.gz" if folders else None
    if path is None or not path.is_file():  # another layout: its own loader reads it
        from sklearn.datasets import load_digits
        digits = load_digits()
        return digits.images, digits.target
    import numpy as np
    rows = np.loadtxt(path, delimiter=",")  # 64 pixel values, then the digit
    return rows[:, :-1].reshape(-1, 8, 8), rows[:, -1].astype(np.int64)


def digits_cnn(classes: int = 10) -> nn.Module:
    """Two 3x3 convolutions, a pooling and two dense layers: ~40k parameters."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(64, classes),
    )


def demo_callbacks(save_dir: Path, patience: int) -> list[Any]:
    """The built-ins the demo shows, each writing into the run folder."""
    from hookline import callbacks, loggers
    return [
        callbacks.EarlyStopping(monitor="val_loss", patience=patience,
                                restore_best_weights=True),
        callbacks.ModelCheckpoint(dirpath=save_dir / "checkpoints",
                                  filename="best-{epoch:02d}-{val_accuracy:.3f}",
                                  monitor="val_accuracy", save_top_k=1, save_last=True),
        callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2),
        callbacks.LearningRateMonitor(),
        callbacks.CSVLogger(save_dir / "results.csv"),
        loggers.TensorBoard(log_dir=save_dir / "tensorboard"),
        loggers.PlotResults(save_dir / "results.png"),
    ]


def run_demo(save_dir: str | Path = "runs/demo", *, epochs: int = 20, patience: int = 5,
             seed: int = 0, verbose: int = 1, device: str = "auto") -> dict[str, float]:
    """Train the digits CNN; returns the final metrics (val_accuracy reaches ~0.98)."""
    from hookline import History, Trainer
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    save_dir = Path(save_dir)
    train, val = load_digits_data(seed=seed)
    torch.manual_seed(seed)
    model = digits_cnn()
    trainer = Trainer(model, optimizer="adam", lr=3e-3, loss="cross_entropy",
                      train_data=train, val_data=val, epochs=epochs, batch_size=64,
                      seed=seed, save_dir=save_dir, device=device, verbose=verbose,
                      callbacks=demo_callbacks(save_dir, patience))
    metrics = trainer.fit()
    history = trainer.callbacks.find(History)[0]
    best = max(history.history.get("val_accuracy", [0.0]))
    print(f"best val_accuracy {best:.4f}; run folder: {save_dir}")
    return metrics

