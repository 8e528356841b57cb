"""LambdaCallback: plain functions on named events, without writing a class."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hookline.callback import Callback
from hookline.events import resolve_event
from hookline.hook_checks import check_native_signature

__all__ = ["LambdaCallback"]


class LambdaCallback(Callback):
    """Call functions on events: ``LambdaCallback(on_train_epoch_end=lambda trainer: ...)``.

    Any event name (or Keras alias) is a keyword; each function receives the engine. An unknown
    name raises ValueError with the closest valid names, unlike Keras, where a typo registers
    nothing. For Keras' ``(epoch, logs)`` signatures use ``hookline.keras.LambdaCallback``.
    """

    def __init__(self, **hooks: Callable[[Any], Any]) -> None:
        self.hooks: dict[str, Callable[[Any], Any]] = {}
        for name, fn in hooks.items():
            event = resolve_event(name)
            if not callable(fn):
                raise TypeError(f"LambdaCallback({name}=...) must be callable, got {fn!r}")
            check_native_signature(self, name, fn, label=f"LambdaCallback({name}=...)")
            self.hooks[event] = fn

    def hookline_handlers(self) -> dict[str, Callable[[Any], Any]]:
        return dict(self.hooks)
