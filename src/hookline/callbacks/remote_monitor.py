"""RemoteMonitor: POST the logs to an HTTP endpoint (Keras' ``RemoteMonitor``), stdlib only."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from hookline.background_sender import BackgroundSender
from hookline.bounded_http import post
from hookline.callback import Callback
from hookline.events import resolve_event

__all__ = ["RemoteMonitor"]


def _plain(value: Any) -> Any:
    """A JSON-safe copy: 0-d tensors and numpy scalars become numbers, NaN/Inf become null."""
    if getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return str(value)


def default_payload(engine: Any, event: str) -> dict[str, Any]:
    """``{"event", "epoch", "step", **engine.metrics}`` (epoch 0-based, step: optimizer steps)."""
    payload: dict[str, Any] = {"event": event}
    for name in ("epoch", "step"):
        if isinstance(getattr(engine, name, None), int):
            payload[name] = getattr(engine, name)
    payload.update(getattr(engine, "metrics", None) or {})
    return payload


class RemoteMonitor(Callback):
    """Send the logs as an HTTP POST at chosen events.

    Args:
        root / path: the endpoint is ``root + path`` (Keras' names); pass a full URL as
            ``root`` with ``path=""``.
        events: the events that send (names or Keras aliases); default: every epoch's end.
        headers: extra HTTP headers (e.g. an authorization token).
        timeout: the most one send may take, in seconds: the whole request, from connecting
            to the last byte of the answer (a server that answers one byte a second is cut off
            at the deadline like one that does not answer).
        send_as_json: True (the default, unlike Keras) sends the payload as the JSON body;
            False sends Keras' form ``field=<payload as JSON>``.
        field: the form field used when ``send_as_json=False``.
        payload_fn: ``fn(engine, event) -> dict`` building what is sent (default:
            ``{"event", "epoch", "step", **engine.metrics}``; NaN and Inf are sent as null).

    Sends run in a background thread, in order: training never waits for the network. When
    the run ends (``on_train_end``, or ``teardown`` after an exception) it waits for the sends
    still queued, at most ``timeout`` seconds for each, then gives up on the rest with a
    warning. A failure (refused connection, timeout, an HTTP error status) never stops
    training: it is reported at the next send (or at the end) and ``on_error="warn"`` warns
    once with this callback's name and counts the rest, reported when the run ends;
    ``failed`` counts the sends that failed (``sent`` those that got through).
    ``send(payload)`` posts at once, in the calling thread, within ``timeout``.

    Example::

        from hookline.callbacks import RemoteMonitor
        monitor = RemoteMonitor("http://127.0.0.1:9000", "/publish/epoch/end/",
                                headers={"Authorization": "Bearer ..."}, timeout=2.0)
        Trainer(model, loss="mse", train_data=(x, y), callbacks=[monitor]).fit()
    """

    order = 80  # after the callbacks that add metrics
    on_error = "warn"
    rank_zero_only = True  # in a distributed run one process writes (or prints)

    def __init__(self, root: str = "http://localhost:9000", path: str = "/publish/epoch/end/",
                 *, events: Iterable[str] = ("on_fit_epoch_end",),
                 headers: dict[str, str] | None = None, timeout: float = 5.0,
                 send_as_json: bool = True, field: str = "data",
                 payload_fn: Callable[[Any, str], dict[str, Any]] | None = None) -> None:
        if not isinstance(root, str) or not isinstance(path, str):
            raise TypeError(f"RemoteMonitor(root=..., path=...) must be strings, got "
                            f"{root!r} and {path!r}")
        url = root.rstrip("/") + "/" + path.lstrip("/") if path else root
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"RemoteMonitor needs an http(s) URL like "
                             f"'http://127.0.0.1:9000/hook', got {url!r}")
        if isinstance(events, str):
            events = (events,)
        self.events = tuple(dict.fromkeys(resolve_event(event) for event in events))
        if not self.events:
            raise ValueError("RemoteMonitor(events=...) needs at least one event, e.g. "
                             "('on_fit_epoch_end',)")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
                or not timeout > 0:
            raise ValueError(f"RemoteMonitor(timeout=...) must be a positive number of "
                             f"seconds, got {timeout!r}")
        if payload_fn is not None and not callable(payload_fn):
            raise TypeError(f"RemoteMonitor(payload_fn=...) must be callable "
                            f"fn(engine, event) -> dict, got {payload_fn!r}")
        self.url = url
        self.headers = dict(headers or {})
        self.timeout = float(timeout)
        self.send_as_json = send_as_json
        self.field = field
        self.payload_fn = payload_fn or default_payload
        self.sent = 0  # sends the server accepted
        self._sender = BackgroundSender("RemoteMonitor", self.timeout)

    def hookline_handlers(self) -> dict[str, Callable[[Any], None]]:
        def sender(event: str) -> Callable[[Any], None]:
            def queue_send(engine: Any) -> None:
                payload = self.payload_fn(engine, event)  # built now: the state of the event
                try:
                    self._sender.submit(lambda: self.send(payload))
                finally:  # an earlier send's error raised by submit: still wait at the end
                    if event == "on_train_end":
                        self._sender.finish()
            return queue_send
        handlers = {event: sender(event) for event in self.events}
        handlers.setdefault("on_train_end", self.finish)
        handlers["teardown"] = self.finish
        return handlers

    @property
    def failed(self) -> int:
        """Sends that failed (refused, timed out, an HTTP error status)."""
        return self._sender.failed

    def finish(self, engine: Any = None) -> None:
        """Wait for the queued sends (at most ``timeout`` s each); raise one that failed."""
        self._sender.finish()

    def send(self, payload: dict[str, Any]) -> None:
        """POST ``payload`` now, within ``timeout`` seconds in all; raises TimeoutError past it,
        and on a network error or an HTTP error status."""
        import urllib.parse

        text = json.dumps(_plain(payload), allow_nan=False)
        if self.send_as_json:
            body = text.encode("utf-8")
            content_type = "application/json"
        else:
            body = urllib.parse.urlencode({self.field: text}).encode("ascii")
            content_type = "application/x-www-form-urlencoded"
        headers = {"Content-Type": content_type, "Accept": "application/json", **self.headers}
        post(self.url, body, headers, self.timeout)
        self.sent += 1
