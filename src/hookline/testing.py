"""A test kit for hookline and for users testing their own callbacks.

``RecordingCallback`` records every event it sees, ``ScriptedMetrics`` feeds chosen metric
values to the callbacks under test, ``crash_at`` kills a run at a chosen moment (to test that
it resumes), ``tiny_model`` and ``tiny_data`` give a seconds-fast classification problem.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from hookline.callback import Callback
from hookline.callbacks.lambda_callback import LambdaCallback
from hookline.events import EVENTS

__all__ = ["Crash", "RecordingCallback", "ScriptedMetrics", "crash_at", "tiny_data",
           "tiny_model"]


class RecordingCallback(Callback):
    """Records ``(event, snapshot)`` for every event; ``events`` lists the names in order.

    ``capture`` names engine attributes to copy at each event (e.g. ``("epoch", "step")``):
    a dict, list or set is copied (one level), so ``metrics`` recorded at
    ``on_train_epoch_end`` holds what was there then, not the validation metrics added later;
    other values (tensors, models) are kept as they are.
    """

    def __init__(self, capture: tuple[str, ...] = (), events: tuple[str, ...] | None = None):
        self.capture = capture
        self.only = set(events) if events is not None else None
        self.records: list[tuple[str, dict[str, Any]]] = []

    @property
    def events(self) -> list[str]:
        return [name for name, _ in self.records]

    def hookline_handlers(self) -> dict[str, Any]:
        def recorder(name: str) -> Any:
            def record(engine: Any) -> None:
                snapshot = {key: _snapshot(getattr(engine, key, None)) for key in self.capture}
                self.records.append((name, snapshot))
            return record
        return {event.name: recorder(event.name) for event in EVENTS
                if self.only is None or event.name in self.only}


def _snapshot(value: Any) -> Any:
    """A copy of a container as it is now; anything else as it is."""
    return copy.copy(value) if isinstance(value, (dict, list, set)) else value


class ScriptedMetrics(Callback):
    """Write chosen values into ``trainer.metrics`` at every epoch's end, before anything reads
    them: test a callback that reacts to a metric (a stopper, a checkpoint policy, an LR
    schedule) without training until the metric happens to behave.

    ``values`` maps a metric name to one value per epoch; at ``on_fit_epoch_end`` the value of
    ``trainer.epoch`` (0-based; a run with ``initial_epoch`` or a resume reads further along)
    is written. Its order (-100) puts it before every built-in reader. NaN is allowed.

    Example::

        stopper = EarlyStopping(patience=1)
        Trainer(tiny_model(), loss="cross_entropy", train_data=tiny_data(), epochs=4,
                callbacks=[ScriptedMetrics({"val_loss": [3, 2, 2.5, 2.5]}), stopper]).fit()
        assert stopper.stopped_epoch == 2
    """

    order = -100

    def __init__(self, values: Mapping[str, Sequence[float]]) -> None:
        if not isinstance(values, Mapping) or not all(
                isinstance(name, str) and isinstance(series, Sequence)
                and not isinstance(series, str) for name, series in values.items()):
            raise TypeError(f"ScriptedMetrics(values=...) must map metric names to one value "
                            f"per epoch, e.g. {{'val_loss': [3, 2, 4]}}; got {values!r}")
        self.values = {name: list(series) for name, series in values.items()}

    def hookline_handlers(self) -> dict[str, Any]:
        return {"on_fit_epoch_end": self.write}

    def write(self, trainer: Any) -> None:
        """Put this epoch's values into ``trainer.metrics``."""
        epoch = trainer.epoch
        for name, series in self.values.items():
            if epoch >= len(series):
                raise IndexError(f"ScriptedMetrics has {len(series)} values for {name!r} but "
                                 f"the run reached epoch {epoch} (0-based); give one value "
                                 f"per epoch the run trains")
            trainer.metrics[name] = series[epoch]


class Crash(Exception):
    """The failure ``crash_at`` raises: a run dying on purpose, so a test can resume it."""


def crash_at(event: str, n: int = 1, *, order: int = 0) -> LambdaCallback:
    """A callback that raises ``Crash`` at the ``n``-th firing of ``event``. With the default
    ``order`` it runs before the built-ins, so a checkpoint callback has not saved that
    moment yet; a higher order lets the callbacks before it finish the event first."""
    seen = [0]

    def count(engine: Any) -> None:
        seen[0] += 1
        if seen[0] == n:
            raise Crash(f"{event} #{n}")
    callback = LambdaCallback(**{event: count})
    callback.order = order
    return callback


def tiny_model(inputs: int = 8, classes: int = 3, hidden: int = 16, seed: int = 0) -> nn.Module:
    """A two-layer MLP, deterministically initialised."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, classes))
    torch.random.set_rng_state(generator_state)
    return model


def tiny_data(samples: int = 64, inputs: int = 8, classes: int = 3,
              seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A learnable classification set: the label is the arg-max of a fixed projection."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, inputs, generator=generator)
    projection = torch.randn(inputs, classes, generator=generator)
    return x, (x @ projection).argmax(dim=1)
