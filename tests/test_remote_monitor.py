"""RemoteMonitor against a real HTTP server on 127.0.0.1: payloads, headers and failures."""

from __future__ import annotations

import json
import math
import socket
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from typing_extensions import Self

from hookline import Callback, Trainer
from hookline.callbacks import History, RemoteMonitor
from hookline.testing import tiny_data, tiny_model


class Server:
    """An HTTP server in a thread that records every POST and answers with ``status``."""

    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        self.requests: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.requests.append({"path": self.path, "headers": dict(self.headers),
                                       "body": body})
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:  # the client gave up waiting (the timeout test)
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.root = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                 "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def _fit(monitor, *, epochs=3):
    trainer = Trainer(tiny_model(), loss="cross_entropy", train_data=tiny_data(32),
                      val_data=tiny_data(16, seed=1), epochs=epochs, batch_size=16, seed=0,
                      verbose=0, callbacks=[monitor])
    trainer.fit()
    return trainer


def test_every_epoch_posts_its_logs_as_json_with_the_given_headers():
    with Server() as server:
        monitor = RemoteMonitor(server.root, "/publish/epoch/end/",
                                headers={"X-Token": "secret"}, timeout=5)
        trainer = _fit(monitor)
    history = trainer.callbacks.find(History)[0].history
    assert monitor.sent == 3
    payloads = [json.loads(request["body"]) for request in server.requests]
    assert [p["epoch"] for p in payloads] == [0, 1, 2]
    assert [p["event"] for p in payloads] == ["on_fit_epoch_end"] * 3
    assert [p["val_loss"] for p in payloads] == history["val_loss"]
    assert [p["step"] for p in payloads] == [2, 4, 6]
    request = server.requests[0]
    assert request["path"] == "/publish/epoch/end/"
    assert request["headers"]["X-Token"] == "secret"
    assert request["headers"]["Content-Type"] == "application/json"


def test_a_finished_run_leaves_no_sender_thread_and_a_reused_monitor_sends_again():
    def senders() -> int:
        return sum(thread.name == "hookline-RemoteMonitor-sender"
                   for thread in threading.enumerate())

    before = senders()
    with Server() as server:
        monitor = RemoteMonitor(server.root, "/a", timeout=5)
        for run in range(1, 6):  # an Optuna-style loop: one monitor, one fit per trial
            _fit(monitor, epochs=1)
            assert monitor.sent == run and len(server.requests) == run
            deadline = time.monotonic() + 5
            while senders() > before and time.monotonic() < deadline:
                time.sleep(0.01)  # the thread returns as soon as it reads its stop
            assert senders() == before, "an idle thread outlived its run"


def test_keras_form_encoding_and_chosen_events():
    with Server() as server:
        monitor = RemoteMonitor(server.root + "/hook", "", events=["on_train_end"],
                                send_as_json=False, field="logs")
        trainer = _fit(monitor)
    assert len(server.requests) == 1 and server.requests[0]["path"] == "/hook"
    form = parse_qs(server.requests[0]["body"].decode())
    payload = json.loads(form["logs"][0])
    assert payload["event"] == "on_train_end" and payload["loss"] == trainer.metrics["loss"]


def test_keras_alias_and_a_custom_payload_with_nan_sent_as_null():
    with Server() as server:
        monitor = RemoteMonitor(server.root, events="on_epoch_end",
                                payload_fn=lambda engine, event: {"x": math.nan,
                                                                  "e": engine.epoch})
        _fit(monitor, epochs=2)
    assert monitor.events == ("on_fit_epoch_end",)
    assert [json.loads(r["body"]) for r in server.requests] == [{"x": None, "e": 0},
                                                                {"x": None, "e": 1}]


def _failing_fit(monitor):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = _fit(monitor)
    assert trainer.callbacks.find(History)[0].epoch == [0, 1, 2]  # training completed
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert any("RemoteMonitor" in message for message in messages), messages
    return messages


def test_a_server_error_warns_and_never_stops_training():
    with Server(status=500) as server:
        messages = _failing_fit(RemoteMonitor(server.root))
    assert len(server.requests) == 3  # it kept trying every epoch
    assert any("500" in message for message in messages)


def test_an_unreachable_server_warns_and_never_stops_training():
    with socket.socket() as probe:  # a port that was free a moment ago: nobody listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monitor = RemoteMonitor(f"http://127.0.0.1:{port}", timeout=1)
    messages = _failing_fit(monitor)
    assert monitor.failed == 3 and monitor.sent == 0
    assert any("Connection refused" in message for message in messages), messages


def test_a_slow_server_times_out_and_training_goes_on():
    with Server(delay=1.0) as server:
        started = time.perf_counter()
        _failing_fit(RemoteMonitor(server.root, timeout=0.2))
        assert time.perf_counter() - started < 2.5  # three sends of at most ~0.2 s each
    assert len(server.requests) == 3


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"root": "ftp://127.0.0.1"}, ValueError, "http"),
    ({"root": "127.0.0.1:9000"}, ValueError, "http"),
    ({"root": 9000}, TypeError, "strings"),
    ({"timeout": 0}, ValueError, "timeout"),
    ({"timeout": "5"}, ValueError, "timeout"),
    ({"events": ["on_epoch_ned"]}, ValueError, "Did you mean on_epoch_end"),
    ({"events": []}, ValueError, "at least one event"),
    ({"payload_fn": "json"}, TypeError, "payload_fn"),
])
def test_bad_options_fail_at_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        RemoteMonitor(**kwargs)


class DribblingServer:
    """A server on 127.0.0.1 that reads a request, then answers one byte a second (a valid
    response, 38 bytes: 38 s). Each answer stops when the client hangs up, and the server stops
    itself after ``lifetime`` seconds, whatever the test does."""

    ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"

    def __init__(self, lifetime: float = 60.0) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.root = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.requests = 0
        self.stop_at = time.monotonic() + lifetime
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while time.monotonic() < self.stop_at:
            try:
                connection, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._dribble, args=(connection,), daemon=True).start()

    def _dribble(self, connection: socket.socket) -> None:
        with connection:
            connection.settimeout(5)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    data += connection.recv(4096)
                self.requests += 1
                for byte in self.ANSWER:
                    if time.monotonic() > self.stop_at:
                        return
                    connection.sendall(bytes([byte]))
                    time.sleep(1.0)
            except OSError:
                return  # the client gave up

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_at = 0.0
        self.thread.join(5)
        self.listener.close()


class Stopwatch(Callback):
    """Records when on_fit_epoch_end reaches it (its order places it around another callback)."""

    def __init__(self, order: int, times: list[float]) -> None:
        self.order, self.times = order, times

    def on_fit_epoch_end(self, trainer: Any) -> None:
        self.times.append(time.perf_counter())


def test_a_server_answering_one_byte_a_second_never_blocks_the_loop():
    before: list[float] = []
    after: list[float] = []
    with DribblingServer() as server:
        monitor = RemoteMonitor(server.root, timeout=2)
        trainer = Trainer(tiny_model(), loss="cross_entropy", train_data=tiny_data(32),
                          val_data=tiny_data(16, seed=1), epochs=3, batch_size=16, seed=0,
                          verbose=0, callbacks=[Stopwatch(79, before), monitor,
                                                Stopwatch(81, after)])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            started = time.perf_counter()
            trainer.fit()
        total = time.perf_counter() - started
    blocked = sum(end - start for start, end in zip(before, after, strict=True))
    assert len(before) == 3
    assert blocked < 0.3, f"the loop waited {blocked:.2f} s for the network"
    # at the end each queued send gets at most its 2 s: the three, cut off, end within ~6 s
    assert total < 9, f"fit took {total:.1f} s"
    assert monitor.failed == 3 and monitor.sent == 0
    assert any("RemoteMonitor" in str(w.message) and "did not answer within 2 s" in
               str(w.message) for w in caught), [str(w.message) for w in caught]


def test_one_send_is_bounded_in_total_not_per_socket_read():
    with DribblingServer() as server:
        monitor = RemoteMonitor(server.root, timeout=1)
        started = time.perf_counter()
        with pytest.raises(TimeoutError, match=r"did not answer within 1 s \(the whole request"):
            monitor.send({"epoch": 0})
        took = time.perf_counter() - started
    assert took < 1.8, f"send took {took:.2f} s with timeout=1"
