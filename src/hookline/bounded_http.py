"""An HTTP POST whose timeout bounds the whole request, not each socket operation.

``urllib``'s timeout applies to every blocking socket call, so a server that answers one
byte a second never trips it: three sends with ``timeout=2`` once took 72 s. Here a timer
shuts the request's sockets down at the deadline, so the call returns (raising TimeoutError)
within ``timeout`` seconds whatever the server does. Proxies from the environment and
redirects work as with ``urllib.request.urlopen``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any

__all__ = ["post"]


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> bytes:
    """POST ``body`` to ``url`` and return the response body, all within ``timeout`` seconds.

    Raises TimeoutError past the deadline, ``urllib.error.HTTPError`` for an error status and
    OSError for a network error."""
    import http.client
    import urllib.request  # lazily: it pulls in http.client, email and ssl

    connections: list[http.client.HTTPConnection] = []
    expired = threading.Event()
    deadline = time.monotonic() + timeout

    def remaining() -> float:
        return max(deadline - time.monotonic(), 0.001)

    def track(kind: type[http.client.HTTPConnection]) -> Any:
        def connect(host: str, **options: Any) -> http.client.HTTPConnection:
            if expired.is_set():
                raise TimeoutError("deadline passed")
            options["timeout"] = remaining()
            connection = kind(host, **options)
            connections.append(connection)
            return connection
        return connect

    class Http(urllib.request.HTTPHandler):
        def http_open(self, req: Any) -> Any:
            return self.do_open(track(http.client.HTTPConnection), req)

    class Https(urllib.request.HTTPSHandler):
        def https_open(self, req: Any) -> Any:
            return self.do_open(track(http.client.HTTPSConnection), req,
                                context=self._context)  # type: ignore[attr-defined]

    def expire() -> None:
        expired.set()
        for connection in connections:  # appending meanwhile is safe for a list
            sock = connection.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.build_opener(Http, Https).open(request, timeout=timeout) as answer:
            return bytes(answer.read())
    except Exception as error:
        # the timer's shutdown, or a socket timeout that fired first (each is set to what is
        # left of the deadline, so it fires at the deadline too: a loaded machine runs the
        # timer thread late)
        if expired.is_set() or time.monotonic() >= deadline - 0.01:
            raise TimeoutError(f"{url} did not answer within {timeout:g} s (the whole request, "
                               f"connection to last byte)") from error
        raise
    finally:
        timer.cancel()
        for connection in connections:
            with contextlib.suppress(Exception):
                connection.close()
