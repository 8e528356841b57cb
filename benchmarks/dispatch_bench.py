"""Cost of dispatching one event through hookline's CallbackList, per call.

Rows: the engine's guard for an event nobody listens to (``if handlers:``, what the loop does
on its hot path), ``fire()`` on an event with no listener, and ``fire()`` with 1 and 10 no-op
listeners. Each figure is the median over repeats of a timeit loop, loop overhead included.
"""

from __future__ import annotations

import statistics
import timeit

EVENT = "on_train_batch_end"


def _noop_callback_class():
    from hookline.callback import Callback

    class NoOp(Callback):
        def on_train_batch_end(self, trainer) -> None:
            pass

    return NoOp


def _per_call(stmt: str, namespace: dict, number: int, repeats: int) -> float:
    timer = timeit.Timer(stmt, globals=namespace)
    return statistics.median(timer.repeat(repeat=repeats, number=number)) / number


def measure(number: int = 200_000, repeats: int = 7) -> dict[str, float]:
    """Microseconds per call for each case."""
    from hookline.callback_list import CallbackList

    noop = _noop_callback_class()
    engine = object()
    figures = {}
    empty = CallbackList([])
    figures["unlisted event, engine guard (if handlers:)"] = _per_call(
        "if handlers: fire(event, engine)",
        {"handlers": empty.handlers[EVENT], "fire": empty.fire, "event": EVENT,
         "engine": engine}, number, repeats)
    for count in (0, 1, 10):
        callbacks = CallbackList([noop() for _ in range(count)])
        figures[f"fire() with {count} no-op listener{'s' if count != 1 else ''}"] = _per_call(
            "fire(event, engine)", {"fire": callbacks.fire, "event": EVENT, "engine": engine},
            number, repeats)
    return {name: seconds * 1e6 for name, seconds in figures.items()}
