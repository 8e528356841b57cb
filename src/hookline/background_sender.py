"""BackgroundSender: network sends run in a thread of their own, off the training loop.

A logger or notifier hands each send to ``submit`` and returns at once; one daemon thread per
sender runs them in order. The loop never waits for the network: a slow or dead server costs
it nothing during training. A send that failed is raised on the training thread at the next
``submit`` (or at ``finish``), so the callback's ``on_error`` policy reports it as usual, with
the callback's name and event. ``finish`` (at the end of a run) waits for the sends still
queued, for at most ``timeout`` seconds in all, then gives up on the rest with a warning, and
ends the thread (the next run's first send starts another).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from hookline.user_warning import warn

__all__ = ["BackgroundSender"]


class BackgroundSender:
    """Run sends in order in one background thread (started at the first send).

    Args:
        owner: named in warnings (e.g. "RemoteMonitor").
        timeout: the most ``finish`` waits for each queued send, in seconds (a send should
            bound itself by it too: ``hookline.bounded_http.post``).
        max_pending: sends queued beyond this are dropped (counted and reported): a server
            slower than the events cannot make memory grow without bound.
    """

    def __init__(self, owner: str, timeout: float, max_pending: int = 1000) -> None:
        self.owner = owner
        self.timeout = float(timeout)
        self._queue: queue.Queue[Callable[[], Any] | None] = queue.Queue(max_pending)
        self._errors: list[BaseException] = []
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self.failed = 0  # sends that raised, over the sender's life

    def submit(self, send: Callable[[], Any]) -> None:
        """Queue ``send``; then raise the error of an earlier send, if one failed."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, args=(self._queue,), daemon=True,
                                            name=f"hookline-{self.owner}-sender")
            self._thread.start()
        try:
            self._queue.put_nowait(send)
        except queue.Full:
            self.dropped += 1
        self.raise_failure()

    def raise_failure(self) -> None:
        """Raise the first error of the sends that failed since the last call (if any)."""
        with self._guard:
            errors, self._errors = self._errors, []
        if errors:
            if len(errors) > 1 and hasattr(errors[0], "add_note"):  # Python 3.11+
                errors[0].add_note(f"hookline: and {len(errors) - 1} more failed send(s) of "
                                   f"{self.owner}")
            raise errors[0]

    def finish(self) -> None:
        """Wait for the queued sends (at most ``timeout`` s each), then raise a failure."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            jobs = self._queue
            # each send bounds itself by timeout; the margin lets one cut off at its deadline
            # report its own error rather than be given up a moment before
            deadline = time.monotonic() + (self.timeout + 0.25) * max(1, jobs.unfinished_tasks)
            with jobs.all_tasks_done:
                while jobs.unfinished_tasks and time.monotonic() < deadline:
                    jobs.all_tasks_done.wait(deadline - time.monotonic())
                left = jobs.unfinished_tasks
            if left:
                warn(f"{self.owner}: {left} send(s) still unfinished at the end of "
                     f"the run after waiting {self.timeout:g} s for each; they are "
                     f"given up (the server is too slow or unreachable)",
                     RuntimeWarning)
            self._retire()  # no idle thread per finished run is left behind
        if self.dropped:
            dropped, self.dropped = self.dropped, 0
            warn(f"{self.owner}: {dropped} send(s) were dropped: more than "
                 f"{self._queue.maxsize} were waiting for a slow server",
                 RuntimeWarning)
        self.raise_failure()

    def _retire(self) -> None:
        """Empty the thread's queue (the sends given up on, if any) and tell it to stop once
        its send in flight returns; a later send starts a new thread with a new queue."""
        old = self._queue
        with contextlib.suppress(queue.Empty):
            while True:
                old.get_nowait()
                old.task_done()
        old.put_nowait(None)
        self._queue = queue.Queue(old.maxsize)
        self._thread = None

    def _run(self, jobs: queue.Queue[Callable[[], Any] | None]) -> None:
        while True:  # its own queue: one retired by _retire is never shared
            send = jobs.get()
            try:
                if send is None:
                    return
                send()
            except BaseException as error:  # noqa: BLE001 - handed to the training thread
                with self._guard:
                    self._errors.append(error)
                    self.failed += 1
            finally:
                jobs.task_done()
