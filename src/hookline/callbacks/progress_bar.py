"""ProgressBar: Keras' verbose modes with a tqdm or rich bar, readable in CI logs too."""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol, TextIO

from hookline.callback import Callback

__all__ = ["ProgressBar", "format_metrics"]

_FLAVOURS = ("tqdm", "rich")


def format_metrics(metrics: dict[str, Any]) -> str:
    """``loss: 0.1234 - val_loss: 0.2345`` in Keras' style (see ``_keras_number``)."""
    parts = []
    for name, value in metrics.items():
        parts.append(f"{name}: {_keras_number(value)}" if isinstance(value, float)
                     else f"{name}: {value}")
    return " - ".join(parts)


def _keras_number(value: float) -> str:
    """Keras' Progbar rule: four decimals (``12345.6780``, ``0.4410``); a value of at most
    1e-3 in size, which four decimals would show as 0, in exponent form (``2.5000e-05``)."""
    return f"{value:.4f}" if abs(value) > 1e-3 else f"{value:.4e}"


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


class ProgressBar(Callback):
    """Show training progress the way Keras' ``verbose`` does.

    Args:
        verbose: 0 prints nothing; 1 (or "auto") shows a bar per epoch on a terminal and one
            line per epoch otherwise (so CI logs and files stay readable); 2 prints one line
            per epoch.
        file: where to write (default: ``sys.stdout`` at the time of writing).
        flavour: "tqdm" or "rich"; None picks tqdm when installed, else rich, else lines. A
            flavour named explicitly must be installed (``pip install 'hookline[progress]'``).

    On a terminal the bar shows the running loss (and each named loss part) during the epoch,
    read at most every ``refresh_s`` seconds, so the loss costs one host-device sync per
    refresh, never one per step; an ETA once the epoch's length is known; and a second bar
    while validation runs. The epoch's metrics appear when the epoch ends. Only in bar mode
    does it listen to per-batch events at all.

    Example::

        from hookline.callbacks import ProgressBar
        Trainer(model, loss="mse", train_data=(x, y), default_callbacks=False,
                callbacks=[ProgressBar(verbose=1, flavour="rich")]).fit()
    """

    order = 95  # last: it shows the metrics every other callback has added
    on_error = "warn"
    rank_zero_only = True  # in a distributed run one process writes (or prints)

    def __init__(self, verbose: int | str = 1, file: TextIO | None = None, *,
                 flavour: str | None = None, refresh_s: float = 0.5) -> None:
        if verbose == "auto":
            verbose = 1
        if verbose not in (0, 1, 2) or isinstance(verbose, bool):
            raise ValueError(f"ProgressBar(verbose=...) must be 0, 1, 2 or 'auto', "
                             f"got {verbose!r}")
        if flavour is not None and flavour not in _FLAVOURS:
            raise ValueError(f"ProgressBar(flavour=...) must be 'tqdm', 'rich' or None "
                             f"(whichever is installed), got {flavour!r}")
        if flavour is not None and not _installed(flavour):
            raise ImportError(f"ProgressBar(flavour={flavour!r}) needs the {flavour} package: "
                              f"pip install 'hookline[progress]'")
        if isinstance(refresh_s, bool) or not isinstance(refresh_s, (int, float)) or \
                refresh_s < 0:
            raise ValueError(f"ProgressBar(refresh_s=...) must be a number of seconds >= 0, "
                             f"got {refresh_s!r}")
        self.refresh_s = float(refresh_s)
        self._next_refresh = 0.0
        self._val_bar: _Bar | None = None
        self.verbose = int(verbose)
        self.file = file
        self.flavour = flavour or next((name for name in _FLAVOURS if _installed(name)), None)
        self._bar: _Bar | None = None
        self._started = 0.0

    def _stream(self) -> TextIO:
        return self.file or sys.stdout

    def _is_terminal(self) -> bool:
        isatty = getattr(self._stream(), "isatty", None)
        try:
            return bool(isatty()) if callable(isatty) else False
        except ValueError:  # a closed stream
            return False

    def uses_bar(self) -> bool:
        """Whether a bar is drawn (verbose 1, a terminal, tqdm or rich installed)."""
        return self.verbose == 1 and self.flavour is not None and self._is_terminal()

    def hookline_handlers(self) -> dict[str, Callable[[Any], None]]:
        if not self.verbose:
            return {}
        handlers: dict[str, Callable[[Any], None]] = {
            "on_train_epoch_start": self._epoch_start,
            "on_fit_epoch_end": self._epoch_end,
            "on_train_end": self._train_end,
            "teardown": self._close,
        }
        if self.uses_bar():
            handlers["on_train_batch_end"] = self._advance
            handlers["on_val_start"] = self._val_start
            handlers["on_val_batch_end"] = self._val_advance
            handlers["on_val_end"] = self._val_end
        return handlers

    # --- handlers -------------------------------------------------------------------------
    def _epoch_start(self, trainer: Any) -> None:
        self._close(trainer)
        self._started = time.perf_counter()
        if self.uses_bar():
            total = trainer.batches_per_epoch
            title = f"Epoch {trainer.epoch + 1}/{trainer.epochs}"
            make = _TqdmBar if self.flavour == "tqdm" else _RichBar
            done = getattr(trainer, "resume_batch", 0)  # a resumed epoch starts part-way
            self._bar = make(title, total, self._stream(), done)

    def _advance(self, trainer: Any) -> None:
        if self._bar is None:
            return
        now = time.monotonic()
        if now >= self._next_refresh:  # one read of the running means per refresh
            self._next_refresh = now + self.refresh_s
            self._bar.advance(running_losses(trainer))
        else:
            self._bar.advance()

    def _val_start(self, validator: Any) -> None:
        self._close_val()
        try:
            total: int | None = len(validator.data)
        except TypeError:
            total = None
        if isinstance(self._bar, _RichBar):  # rich draws one live display: a second task
            self._val_bar = self._bar.subtask("  validating", total)
            return
        make = _TqdmBar if self.flavour == "tqdm" else _RichBar
        self._val_bar = make("  validating", total, self._stream(), 0, leave=False)

    def _val_advance(self, validator: Any) -> None:
        if self._val_bar is not None:
            self._val_bar.advance()

    def _val_end(self, validator: Any) -> None:
        self._close_val()

    def _close_val(self) -> None:
        if self._val_bar is not None:
            self._val_bar.close("")
            self._val_bar = None

    def _epoch_end(self, trainer: Any) -> None:
        summary = format_metrics(trainer.metrics)
        if self._bar is not None:
            self._bar.close(summary)
            self._bar = None
            return
        seconds = time.perf_counter() - self._started
        print(f"Epoch {trainer.epoch + 1}/{trainer.epochs} - {seconds:.1f}s - {summary}",
              file=self._stream(), flush=True)

    def _train_end(self, trainer: Any) -> None:
        self._close(trainer)
        reason = getattr(trainer, "stop_reason", "")
        if reason:
            print(f"Training stopped after epoch {trainer.epoch + 1}: {reason}",
                  file=self._stream(), flush=True)

    def _close(self, engine: Any) -> None:
        self._close_val()
        if self._bar is not None:
            self._bar.close("")
            self._bar = None


def running_losses(trainer: Any) -> str:
    """``loss=0.1234 box=0.05 ...``: the epoch's running means so far, read with one copy."""
    found = getattr(trainer, "loss_means", None)
    if found is None:
        return ""
    means = found.reshape(-1).tolist()
    names = ["loss"] if len(means) == 1 else ["loss", *trainer.loss_names]
    return " ".join(f"{name}={_keras_number(value)}" for name, value in zip(names, means))


class _Bar(Protocol):
    """One epoch's bar: ``advance(postfix)`` per batch, ``close(summary)`` at the end."""

    def advance(self, postfix: str | None = None) -> None: ...

    def close(self, summary: str) -> None: ...


class _TqdmBar:
    def __init__(self, title: str, total: int | None, stream: TextIO, done: int, *,
                 leave: bool = True) -> None:
        from tqdm import tqdm
        self.bar = tqdm(total=total, initial=done, desc=title, file=stream, leave=leave,
                        unit="batch", dynamic_ncols=True)

    def advance(self, postfix: str | None = None) -> None:
        if postfix:
            self.bar.set_postfix_str(postfix, refresh=False)
        self.bar.update(1)

    def close(self, summary: str) -> None:
        # the epoch's metrics on a line of their own: tqdm cuts a postfix at the terminal's
        # width, and these are the figures a user reads
        self.bar.set_postfix_str("", refresh=False)
        self.bar.close()
        if summary:
            print(f"{self.bar.desc} - {summary}", file=self.bar.fp, flush=True)


class _RichBar:
    def __init__(self, title: str, total: int | None, stream: TextIO, done: int, *,
                 leave: bool = True) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        console = Console(file=stream, force_terminal=True)
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(),
                                 TextColumn("eta"), TimeRemainingColumn(),
                                 TextColumn("{task.fields[summary]}"), console=console,
                                 transient=not leave)
        self.task = self.progress.add_task(title, total=total, completed=done, summary="")
        self.progress.start()

    def advance(self, postfix: str | None = None) -> None:
        if postfix:
            self.progress.update(self.task, summary=postfix)
        self.progress.advance(self.task)

    def close(self, summary: str) -> None:
        # the epoch's metrics on a line of their own: in the bar's row a table would squeeze
        # them (and the title) to fit the terminal
        self.progress.update(self.task, summary="")
        self.progress.stop()
        if summary:
            title = self.progress.tasks[0].description if self.progress.tasks else ""
            self.progress.console.print(f"{title} - {summary}", highlight=False,
                                        soft_wrap=True)

    def subtask(self, title: str, total: int | None) -> _RichTask:
        """A second, transient line in this bar's display (the validation pass)."""
        return _RichTask(self.progress, self.progress.add_task(title, total=total, summary=""))


class _RichTask:
    def __init__(self, progress: Any, task: Any) -> None:
        self.progress, self.task = progress, task

    def advance(self, postfix: str | None = None) -> None:
        self.progress.advance(self.task)

    def close(self, summary: str) -> None:
        self.progress.remove_task(self.task)
