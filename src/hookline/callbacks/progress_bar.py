"""ProgressBar: Keras' verbose modes on top of tqdm, readable in CI logs too."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from hookline.callback import Callback

__all__ = ["ProgressBar", "format_metrics"]


def format_metrics(metrics: dict[str, Any]) -> str:
    """``loss: 0.1234 - val_loss: 0.2345`` in Keras' style."""
    parts = []
    for name, value in metrics.items():
        parts.append(f"{name}: {value:.4g}" if isinstance(value, float) else f"{name}: {value}")
    return " - ".join(parts)


class ProgressBar(Callback):
    """Show training progress.

    ``verbose=0`` prints nothing; ``1`` shows a tqdm bar per epoch on a terminal and one line
    per epoch otherwise (so CI logs stay readable); ``2`` prints one line per epoch. The bar
    counts batches without reading the loss, so it adds no device sync per step.

    Example::

        Trainer(..., callbacks=[ProgressBar(verbose=2)], default_callbacks=False)
    """

    order = 95
    on_error = "warn"

    def __init__(self, verbose: int = 1, file: TextIO | None = None) -> None:
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
        self.verbose = verbose
        self.file = file
        self._bar: Any = None
        self._started = 0.0

    def _stream(self) -> TextIO:
        return self.file or sys.stdout

    def _use_bar(self) -> bool:
        if self.verbose != 1:
            return False
        try:
            import tqdm  # noqa: F401
        except ImportError:
            return False
        stream = self._stream()
        return bool(getattr(stream, "isatty", lambda: False)())

    def on_train_epoch_start(self, trainer: Any) -> None:
        self._started = time.perf_counter()
        if self._use_bar():
            from tqdm import tqdm
            try:
                total = len(trainer.train_data)
            except TypeError:
                total = None
            self._bar = tqdm(total=total, desc=f"Epoch {trainer.epoch + 1}/{trainer.epochs}",
                             file=self._stream(), leave=True, unit="batch")

    def on_train_batch_end(self, trainer: Any) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def on_fit_epoch_end(self, trainer: Any) -> None:
        if not self.verbose:
            return
        seconds = time.perf_counter() - self._started
        line = (f"Epoch {trainer.epoch + 1}/{trainer.epochs} - {seconds:.1f}s - "
                f"{format_metrics(trainer.metrics)}")
        if self._bar is not None:
            self._bar.set_postfix_str(format_metrics(trainer.metrics), refresh=True)
            self._bar.close()
            self._bar = None
        else:
            print(line, file=self._stream(), flush=True)

    def teardown(self, engine: Any) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
