"""A test kit for hookline and for users testing their own callbacks.

``RecordingCallback`` records every event it sees, ``tiny_model`` and ``tiny_data`` give a
seconds-fast classification problem.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hookline.callback import Callback
from hookline.events import EVENTS

__all__ = ["RecordingCallback", "tiny_data", "tiny_model"]


class RecordingCallback(Callback):
    """Records ``(event, snapshot)`` for every event; ``events`` lists the names in order.

    ``capture`` names engine attributes to copy at each event (e.g. ``("epoch", "step")``).
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
                snapshot = {key: getattr(engine, key, None) for key in self.capture}
                self.records.append((name, snapshot))
            return record
        return {event.name: recorder(event.name) for event in EVENTS
                if self.only is None or event.name in self.only}


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
