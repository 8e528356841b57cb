"""What every engine shares: the callback list, devices, precision and the top-level run scope."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any, TypeVar

import torch

from hookline.callback_list import CallbackList

__all__ = ["SIGNALS", "Engine", "Terminated", "autocast", "place_model", "resolve_device",
           "resolve_precision", "sigterm_raises"]

T = TypeVar("T")

_PRECISIONS = {"32": "32", "32-true": "32", "fp32": "32", "bf16": "bf16", "bf16-mixed": "bf16",
               "16": "fp16", "fp16": "fp16", "16-mixed": "fp16"}
_DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` picks CUDA when present, else MPS, else the CPU; others are checked."""
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"device must be a string or torch.device, got {device!r}")
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = device.split(":")[0]
    if kind not in _DEVICE_TYPES:
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or "
                         f"'mps'")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"invalid device {device!r}: {error}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but CUDA is not available here; "
                         f"use device='auto' or 'cpu'")
    return resolved


_MODULE_APPLY = torch.nn.Module._apply


def place_model(model: torch.nn.Module, device: torch.device) -> None:
    """``model.to(device)``, left out when every parameter and buffer is there already.

    ``Module.to`` visits every module and tensor even when it moves nothing: 1.2 ms at the
    start of every fit for a 12-layer transformer encoder, against 0.13 ms for this check
    (31 µs against 5.5 µs for a small MLP). A module with its own ``_apply`` (an RNN's flat
    weights, a torchmetrics metric's states) may move more than its tensors: it always gets
    the real call.
    """
    placed = device
    if device.type == "cuda" and device.index is None:  # "cuda" puts tensors on cuda:N
        placed = torch.device("cuda", torch.cuda.current_device())
    if not _placed(model, placed):
        model.to(device)


def _placed(model: torch.nn.Module, device: torch.device) -> bool:
    for module in model.modules():  # plain loops: a generator in any() doubles the cost
        if type(module)._apply is not _MODULE_APPLY:
            return False
        for tensor in module._parameters.values():
            if tensor is not None and tensor.device != device:
                return False
        for buffer in module._buffers.values():
            if buffer is not None and buffer.device != device:
                return False
    return True


def resolve_precision(precision: str | int) -> str:
    """Normalise Lightning-style precision names to "32", "bf16" or "fp16"."""
    key = str(precision).lower()
    if key not in _PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use '32', 'bf16' or 'fp16' "
                         f"(also '16-mixed', 'bf16-mixed')")
    return _PRECISIONS[key]


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The autocast context for a precision (a no-op context for full precision)."""
    if precision == "32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived during ``Trainer.fit`` (a scheduler preempting the job, ``kill``).

    It is a KeyboardInterrupt, so code that handles Ctrl-C handles it too and ``except
    Exception`` does not swallow it; ``on_exception`` fires (an OnExceptionCheckpoint saves),
    ``teardown`` runs, and it is re-raised. ``signum`` is the signal's number.
    """

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(f"received {signal.Signals(signum).name} during training")
        self.signum = signum


class SignalDeferral:
    """Where a SIGTERM waits while an optimizer step runs.

    A signal landing inside ``optimizer.step()`` would leave the parameters half updated
    (Adam's per-parameter step counts mixed), and a checkpoint taken then could not be exact.
    The trainer marks the step ``critical``; a SIGTERM arriving then is kept ``pending`` and
    raised at the end of that batch, where the position is a clean batch boundary.
    """

    __slots__ = ("critical", "pending", "received")

    def __init__(self) -> None:
        self.critical = False
        self.pending = 0
        self.received = False

    def raise_pending(self) -> None:
        """Raise the SIGTERM that waited for the step to finish."""
        signum, self.pending, self.received = self.pending, 0, True
        raise Terminated(signum)


SIGNALS = SignalDeferral()


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """While the block runs, SIGTERM raises ``Terminated`` in the main thread.

    Installed only over the default action (a handler of your own is left alone) and only in
    the main thread (Python delivers signals there); the previous handler is restored after.
    A second SIGTERM while the first is being handled is ignored, so the clean-up it started
    (an on-exception checkpoint) can finish. One arriving during an optimizer step waits for
    the end of the batch (``SIGNALS``).
    """
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    SIGNALS.critical, SIGNALS.pending, SIGNALS.received = False, 0, False

    def handler(signum: int, frame: object) -> None:
        if SIGNALS.received or SIGNALS.pending:
            return
        if SIGNALS.critical:
            SIGNALS.pending = signum  # raised when the batch ends
            return
        SIGNALS.received = True
        raise Terminated(signum)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


class Engine:
    """Base of Trainer, Validator, Predictor and Exporter.

    It owns the callback list (shared with the engines it creates), fires events, and wraps each
    top-level run so that ``on_exception`` and ``teardown`` always run and the original
    exception is re-raised unchanged.
    """

    def __init__(self, callbacks: Any = (), *, profile: bool = False) -> None:
        self.callbacks: CallbackList = callbacks if isinstance(callbacks, CallbackList) \
            else CallbackList(callbacks, profile=profile)
        self.args = SimpleNamespace()
        self.exception: BaseException | None = None

    # --- registration (the Ultralytics door) ------------------------------------------------
    def add_callback(self, event_or_callback: Any, fn: Callable[[Any], Any] | None = None, *,
                     every: int | None = None, once: int | None = None,
                     when: Callable[[Any], bool] | None = None, order: int | None = None,
                     on_error: str | None = None) -> Any:
        """``add_callback("on_train_epoch_end", fn)`` or ``add_callback(CallbackObject())``."""
        if isinstance(event_or_callback, str):
            if fn is None:
                raise TypeError(f"add_callback({event_or_callback!r}) needs the function to "
                                f"call: add_callback({event_or_callback!r}, fn)")
            return self.callbacks.add_function(event_or_callback, fn, every=every, once=once,
                                               when=when, order=order, on_error=on_error)
        if fn is not None:
            raise TypeError("add_callback(callback_object) takes no function; to register a "
                            "function use add_callback('event_name', fn)")
        return self.callbacks.add(event_or_callback, every=every, once=once, when=when,
                                  order=order, on_error=on_error)

    def remove_callback(self, callback: Any, event: str | None = None) -> None:
        """Unregister a callback object or function (from one event, or from all)."""
        self.callbacks.remove(callback, event)

    def run_callbacks(self, event: str) -> None:
        """Fire ``event`` now (for callbacks that produce events, e.g. ``on_model_save``)."""
        self.callbacks.fire(event, self)

    def describe_callbacks(self) -> str:
        """The resolved callback order per event, as text (also printed by ``print``)."""
        return self.callbacks.describe()

    # --- the top-level scope --------------------------------------------------------------
    def _run_top_level(self, body: Callable[[], T], *, fit: bool = False) -> T:
        """Run ``body`` as a whole run: on_exception on failure, teardown always."""
        with self._top_level_scope(fit=fit):
            return body()

    @contextlib.contextmanager
    def _top_level_scope(self, *, fit: bool = False) -> Iterator[None]:
        """Fire on_exception for an escaping exception, then teardown whatever happened; the
        exception is re-raised unchanged. A generator closed early is not an exception.

        A run started inside a fit that shares its callbacks (``trainer.predict`` from an
        epoch-end callback) is part of that fit: it fires neither, so the fit's loggers are
        not closed mid-training; an error it lets escape reaches the fit's own handling."""
        callbacks = self.callbacks
        if callbacks.fits_running:
            yield  # nested in a fit
            return
        callbacks.fits_running += fit
        self.exception = None
        try:
            yield
        except GeneratorExit:
            raise
        except BaseException as error:
            self.exception = error
            self._fire_quietly("on_exception", error)
            raise
        finally:
            callbacks.fits_running -= fit
            try:
                self._fire_quietly("teardown", self.exception)
            finally:
                callbacks.report_failures()

    def _fire_quietly(self, event: str, pending: BaseException | None) -> None:
        """Fire while an exception may be in flight: a failing handler must not hide it."""
        if pending is None:
            self.callbacks.fire(event, self)
            return
        try:
            self.callbacks.fire(event, self)
        except Exception as error:  # noqa: BLE001 - the original error wins
            if hasattr(pending, "add_note"):
                pending.add_note(f"hookline: while handling this, {event} also failed: "
                                 f"{type(error).__name__}: {error}")
