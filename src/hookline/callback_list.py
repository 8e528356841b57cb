"""Registration, ordering, filtering and dispatch of callbacks, with a per-callback error policy.

Dispatch is precomputed: ``handlers[event]`` is the ordered list of callables that really listen
to ``event``. The lists are rebuilt in place whenever callbacks change, so an engine may hold a
reference to one and check it with a plain ``if handlers:`` on its hot path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from hookline.callback import Callback
from hookline.events import ALIASES, EVENT_NAMES, EVENTS, looks_like_event, resolve_event
from hookline.hook_checks import check_native_signature
from hookline.user_warning import warn

__all__ = ["CallbackList", "Filtered", "filtered", "listed"]

Handler = Callable[[Any], Any]
_POLICIES = ("raise", "warn", "disable")
# Attributes of the base class that start with "on_" but are not hooks.
_NOT_HOOKS = frozenset({"on_error"})


class Filtered:
    """Wrap a callback (object or function) so it only runs when its filter passes.

    ``every=N`` runs on the N-th, 2N-th... firing of each event; ``once=N`` only on the N-th;
    ``when=predicate`` only when ``predicate(engine)`` is true (combined with the others by
    "and"). Counts are kept per event.
    """

    def __init__(self, target: Any, *, every: int | None = None, once: int | None = None,
                 when: Callable[[Any], bool] | None = None) -> None:
        for name, value in (("every", every), ("once", once)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise ValueError(f"{name}= must be a positive integer, got {value!r}")
        if every is not None and once is not None:
            raise ValueError("every= and once= cannot be combined: once=N already fires on a "
                             "single firing; use when= to add a condition")
        if when is not None and not callable(when):
            raise TypeError(f"when= must be a callable taking the engine, got {when!r}")
        if every is None and once is None and when is None:
            raise ValueError("a filter needs at least one of every=, once=, when=")
        self.target = target
        self.every, self.once, self.when = every, once, when


def filtered(target: Any, *, every: int | None = None, once: int | None = None,
             when: Callable[[Any], bool] | None = None) -> Filtered:
    """Filter a callback for ``callbacks=[...]``: ``filtered(MyCallback(), every=10)``."""
    return Filtered(target, every=every, once=once, when=when)


class _FilteredHandler:
    """A handler that counts its event's firings and calls through when the filter passes."""

    __slots__ = ("count", "every", "fn", "once", "when")

    def __init__(self, fn: Handler, spec: Filtered) -> None:
        self.fn, self.every, self.once, self.when = fn, spec.every, spec.once, spec.when
        self.count = 0

    def __call__(self, engine: Any) -> Any:
        self.count += 1
        if self.every is not None and self.count % self.every:
            return None
        if self.once is not None and self.count != self.once:
            return None
        if self.when is not None and not self.when(engine):
            return None
        return self.fn(engine)


class _TimedHandler:
    """A handler that adds its wall time to a shared table (only when profiling is on)."""

    __slots__ = ("fn", "key", "table")

    def __init__(self, fn: Handler, key: tuple[str, str], table: dict[tuple[str, str], list]):
        self.fn, self.key, self.table = fn, key, table

    def __call__(self, engine: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.fn(engine)
        finally:
            cell = self.table.setdefault(self.key, [0, 0.0])
            cell[0] += 1
            cell[1] += time.perf_counter() - start


@dataclass
class _Entry:
    """One registered callback: its owner object, the hooks it listens to and its policy."""

    owner: Any
    name: str
    hooks: list[tuple[str, Handler]]
    order: int
    index: int
    on_error: str
    max_failures: int
    rank_zero_only: bool
    failures: int = 0
    disabled: bool = False
    first_error: str = ""
    failed_events: set[str] = field(default_factory=set)


def _describe(obj: Any) -> str:
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    return name if isinstance(name, str) else type(obj).__name__


def discover_hooks(callback: Any) -> list[tuple[str, Handler]]:
    """The (event, bound method) pairs a callback object overrides; typos raise ValueError."""
    custom = getattr(callback, "hookline_handlers", None)
    if callable(custom):
        return [(resolve_event(name), fn) for name, fn in custom().items()]
    hooks: list[tuple[str, Handler]] = []
    cls = type(callback)
    for name in dir(cls):
        if name.startswith("_") or name in _NOT_HOOKS or not looks_like_event(name):
            continue
        attribute = getattr(cls, name)
        if not callable(attribute):
            continue
        if name not in EVENT_NAMES and name not in ALIASES:
            resolve_event(name)  # raises with "did you mean"
        if isinstance(callback, Callback) and attribute is getattr(Callback, name, None):
            continue  # the base class's no-op: not a listener
        method = getattr(callback, name)
        check_native_signature(callback, name, method)
        hooks.append((resolve_event(name), method))
    return hooks


def listed(callbacks: Any) -> Iterable[Any]:
    """``callbacks=`` as a sequence: None is none, and one callback (Lightning takes a single
    one) is a list of it, not an object to iterate."""
    if callbacks is None:
        return ()
    if isinstance(callbacks, (Callback, Filtered, str, bytes)) or \
            not isinstance(callbacks, Iterable):
        return [callbacks]
    return callbacks


class CallbackList:
    """The ordered, filtered callbacks of one engine, dispatched per event.

    ``handlers`` maps every event name to the list of callables to run, in order; the lists are
    updated in place. ``fire(event, engine)`` runs one event with the error policy applied.
    """

    def __init__(self, callbacks: Iterable[Any] | Any = (), *, profile: bool = False) -> None:
        self.handlers: dict[str, list[Handler]] = {event.name: [] for event in EVENTS}
        self._owners: dict[str, list[_Entry]] = {event.name: [] for event in EVENTS}
        self._entries: list[_Entry] = []
        self._counter = 0
        self._rank = 0
        self.profile = profile
        self.timings: dict[tuple[str, str], list] = {}
        self.fits_running = 0  # a run inside a fit is part of it (Engine._top_level_scope)
        for position, callback in enumerate(listed(callbacks)):
            self.add(callback, _position=position)

    # --- registration ---------------------------------------------------------------------
    def add(self, callback: Any, *, every: int | None = None, once: int | None = None,
            when: Callable[[Any], bool] | None = None, order: int | None = None,
            on_error: str | None = None, _position: int | None = None) -> Any:
        """Register a callback object (a ``Callback``, a Keras-style callback or any object
        with event-named methods), optionally filtered. Returns the callback."""
        spec: Filtered | None = None
        if isinstance(callback, Filtered):
            spec, callback = callback, callback.target
        if every is not None or once is not None or when is not None:
            spec = Filtered(callback, every=every, once=once, when=when)
        if callable(callback) and not isinstance(callback, Callback) \
                and not hasattr(callback, "hookline_handlers") and not _has_hooks(callback):
            where = f"callbacks[{_position}]" if _position is not None else "the callback"
            raise TypeError(
                f"{where} is a plain function ({_describe(callback)}); a function needs an "
                f"event: use add_callback('on_train_epoch_end', fn) or "
                f"LambdaCallback(on_train_epoch_end=fn)")
        hooks = discover_hooks(callback)
        if not hooks and not isinstance(callback, Callback):
            where = f"callbacks[{_position}]" if _position is not None else "callback"
            raise TypeError(
                f"{where} is {callback!r} ({type(callback).__name__}), which listens to no "
                f"event: pass a hookline.Callback, a hookline.keras.Callback, or an object "
                f"with methods named after events (see docs/events.md)")
        self._register(callback, type(callback).__name__, hooks, spec, order, on_error)
        return callback

    def add_function(self, event: str, fn: Handler, *, every: int | None = None,
                     once: int | None = None, when: Callable[[Any], bool] | None = None,
                     order: int | None = None, on_error: str | None = None) -> Handler:
        """Register ``fn(engine)`` on one event (Ultralytics' ``add_callback``)."""
        name = resolve_event(event)
        if not callable(fn):
            raise TypeError(f"the callback for {event!r} must be callable, got "
                            f"{type(fn).__name__}: {fn!r}")
        check_native_signature(fn, event, fn, label=f"add_callback({event!r}, fn)")
        spec = Filtered(fn, every=every, once=once, when=when) \
            if (every is not None or once is not None or when is not None) else None
        self._register(fn, _describe(fn), [(name, fn)], spec, order, on_error)
        return fn

    def _register(self, owner: Any, name: str, hooks: list[tuple[str, Handler]],
                  spec: Filtered | None, order: int | None, on_error: str | None) -> None:
        policy = on_error if on_error is not None else getattr(owner, "on_error", "raise")
        if policy not in _POLICIES:
            raise ValueError(f"on_error must be one of {_POLICIES}, got {policy!r}")
        resolved_order = order if order is not None else getattr(owner, "order", 0)
        if not isinstance(resolved_order, int):
            raise TypeError(f"order must be an int, got {resolved_order!r}")
        if spec is not None:
            hooks = [(event, _FilteredHandler(fn, spec)) for event, fn in hooks]
        self._counter += 1
        self._entries.append(_Entry(
            owner=owner, name=name, hooks=hooks, order=resolved_order, index=self._counter,
            on_error=policy, max_failures=int(getattr(owner, "max_failures", 3)),
            rank_zero_only=bool(getattr(owner, "rank_zero_only", False))))
        self._rebuild()

    def remove(self, callback: Any, event: str | None = None) -> None:
        """Unregister a callback object or function (from one event, or from all)."""
        target = resolve_event(event) if event is not None else None
        before = len(self._entries)
        kept = []
        for entry in self._entries:
            if entry.owner is callback or (isinstance(callback, type)
                                           and type(entry.owner) is callback):
                if target is not None:
                    entry.hooks = [(e, fn) for e, fn in entry.hooks if e != target]
                    if entry.hooks:
                        kept.append(entry)
                continue
            kept.append(entry)
        if len(kept) == before and target is None:
            raise ValueError(f"{_describe(callback)} is not registered")
        self._entries = kept
        self._rebuild()

    def set_rank(self, rank: int) -> None:
        """Tell the list which process it runs in, so rank-zero-only callbacks skip others."""
        self._rank = rank
        self._rebuild()

    def _rebuild(self) -> None:
        ordered = sorted(self._entries, key=lambda entry: (entry.order, entry.index))
        lists: dict[str, list[Handler]] = {name: [] for name in self.handlers}
        owners: dict[str, list[_Entry]] = {name: [] for name in self.handlers}
        for entry in ordered:
            if entry.disabled or (entry.rank_zero_only and self._rank != 0):
                continue
            for event, fn in entry.hooks:
                if self.profile:
                    fn = _TimedHandler(fn, (entry.name, event), self.timings)
                lists[event].append(fn)
                owners[event].append(entry)
        for name in self.handlers:  # in place: engines may hold these lists
            self.handlers[name][:] = lists[name]
        # a new owners list: an event firing now keeps the one aligned with its snapshot
        self._owners = owners

    # --- dispatch -------------------------------------------------------------------------
    def fire(self, event: str, engine: Any) -> None:
        """Run every handler of ``event`` in order, applying each callback's error policy."""
        handlers = self.handlers[event]
        if not handlers:
            return
        pending = False
        owners = self._owners[event]
        # a snapshot: a callback added or removed by a handler takes part from the next event
        # on, and neither skips nor repeats a handler of this one
        for position, handler in enumerate(tuple(handlers)):
            try:
                handler(engine)
            except Exception as error:  # noqa: BLE001 - policy decides; "raise" re-raises
                pending = self._failed(event, owners[position], error) or pending
        if pending:
            self._rebuild()

    def _failed(self, event: str, entry: _Entry, error: Exception) -> bool:
        if entry.on_error == "raise":
            note = f"hookline: raised by callback {entry.name} at event {event!r}"
            if hasattr(error, "add_note"):
                error.add_note(note)
            raise error
        entry.failures += 1
        entry.failed_events.add(event)
        if entry.failures == 1:
            entry.first_error = f"{type(error).__name__}: {error}"
            warn(
                f"callback {entry.name} failed at {event!r} with {entry.first_error}; "
                f"training continues (on_error={entry.on_error!r}); further failures are "
                f"counted and reported when the run ends", RuntimeWarning)
        if entry.on_error == "disable" and entry.failures >= entry.max_failures:
            entry.disabled = True
            warn(f"callback {entry.name} disabled after {entry.failures} failures",
                 RuntimeWarning)
            return True
        return False

    def report_failures(self) -> None:
        """Warn once per failing callback with its failure count (called when a run ends)."""
        for entry in self._entries:
            if entry.failures:
                warn(
                    f"callback {entry.name} failed {entry.failures} time(s) during the run "
                    f"(events: {', '.join(sorted(entry.failed_events))}; first: "
                    f"{entry.first_error})", RuntimeWarning)
                entry.failures = 0
                entry.failed_events.clear()

    # --- inspection and state -------------------------------------------------------------
    def __iter__(self) -> Iterator[Any]:
        return iter(entry.owner for entry in sorted(self._entries,
                                                    key=lambda e: (e.order, e.index)))

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, kind: type) -> list[Any]:
        """The registered callbacks that are instances of ``kind``."""
        return [owner for owner in self if isinstance(owner, kind)]

    def describe(self) -> str:
        """The resolved order of callbacks per event (and timings when profiling)."""
        lines = []
        for event in EVENTS:
            owners = self._owners[event.name]
            if owners:
                names = ", ".join(f"{entry.name}(order={entry.order})" for entry in owners)
                lines.append(f"{event.name}: {names}")
        if self.timings:
            lines.append("")
            lines.append("time per callback and event (calls, total seconds):")
            for (name, event_name), (calls, seconds) in sorted(self.timings.items(),
                                                               key=lambda item: -item[1][1]):
                lines.append(f"  {name} @ {event_name}: {calls} calls, {seconds:.4f}s")
        return "\n".join(lines) if lines else "(no callbacks listen to any event)"

    def state_dict(self) -> dict[str, Any]:
        """Every stateful callback's state, under a key unique within this list."""
        states: dict[str, Any] = {}
        for key, owner in self.keyed():
            state = owner.state_dict()
            if state:
                states[key] = state
        return states

    def load_state_dict(self, states: dict[str, Any]) -> None:
        """Give each callback the state saved under its key (missing keys are left alone)."""
        for key, owner in self.keyed():
            if key in states:
                owner.load_state_dict(states[key])

    def check_states(self, states: dict[str, Any], trainer: Any) -> None:
        """Let each callback refuse the state saved under its key (``check_state_dict``)
        before any state is loaded."""
        for key, owner in self.keyed():
            check = getattr(owner, "check_state_dict", None)
            if key in states and callable(check):
                check(states[key], trainer)

    def filter_counts(self) -> dict[str, int]:
        """How often each filtered handler's event has fired (``every=``/``once=`` count
        them), keyed by the filtered registration's position and the event: a checkpoint
        holds them, so a resumed run's filters fire where the uninterrupted run's did."""
        counts: dict[str, int] = {}
        for position, entry in enumerate(self._filtered_entries()):
            for event, handler in entry.hooks:
                counts[f"{position}:{event}"] = cast("_FilteredHandler", handler).count
        return counts

    def load_filter_counts(self, counts: dict[str, int]) -> None:
        """Put back ``filter_counts()`` (entries this list does not have are ignored)."""
        for position, entry in enumerate(self._filtered_entries()):
            for event, handler in entry.hooks:
                saved = counts.get(f"{position}:{event}")
                if saved is not None:
                    cast("_FilteredHandler", handler).count = int(saved)

    def _filtered_entries(self) -> list[_Entry]:
        return [entry for entry in sorted(self._entries, key=lambda e: e.index)
                if entry.hooks and all(isinstance(fn, _FilteredHandler) for _, fn in entry.hooks)]

    def keyed(self) -> list[tuple[str, Any]]:
        """``(state key, callback)`` for every stateful callback, keys unique in this list."""
        seen: dict[str, int] = {}
        keyed = []
        for entry in sorted(self._entries, key=lambda e: e.index):
            owner = entry.owner
            if not callable(getattr(owner, "state_dict", None)) or isinstance(owner, type):
                continue
            base = getattr(owner, "state_key", type(owner).__qualname__)
            seen[base] = seen.get(base, 0) + 1
            keyed.append((base if seen[base] == 1 else f"{base}#{seen[base]}", owner))
        return keyed


def _has_hooks(obj: Any) -> bool:
    return any(looks_like_event(name) and name not in _NOT_HOOKS and not name.startswith("_")
               and callable(getattr(type(obj), name, None)) for name in dir(type(obj)))
