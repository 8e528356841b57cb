"""History: the per-epoch metrics of a fit, as Keras' ``History`` keeps them."""

from __future__ import annotations

from typing import Any

from hookline.callback import Callback
from hookline.plain_number import as_python

__all__ = ["History"]


class History(Callback):
    """Record ``trainer.metrics`` after every epoch.

    ``history.history`` maps each metric name to its list of values (Keras' layout; a metric
    missing in an epoch is recorded as None so lists stay aligned), ``history.epoch`` lists the
    epochs. Values are Python numbers (a numpy scalar or 0-d tensor a callback logged is read
    out, as Keras' logs do), so its state loads with weights-only unpickling. It runs late (order 90) so it records the metrics other
    callbacks add at ``on_fit_epoch_end``, such as the learning rate.

    Example::

        history = model.fit(x, y, epochs=3)
        history.history["loss"]  # three values
    """

    order = 90

    def __init__(self) -> None:
        self.history: dict[str, list[Any]] = {}
        self.epoch: list[int] = []
        self.params: dict[str, Any] = {}

    def on_train_start(self, trainer: Any) -> None:
        if trainer.epoch == trainer.start_epoch and not getattr(trainer, "resumed", False):
            self.history, self.epoch = {}, []
        self.params = {"epochs": trainer.epochs, "verbose": trainer.args.verbose}

    def on_fit_epoch_end(self, trainer: Any) -> None:
        done = len(self.epoch)
        self.epoch.append(trainer.epoch)
        for name in trainer.metrics:
            self.history.setdefault(name, [None] * done)
        for name, values in self.history.items():
            values.append(as_python(trainer.metrics.get(name)))

    def state_dict(self) -> dict[str, Any]:
        return {"history": {k: list(v) for k, v in self.history.items()},
                "epoch": list(self.epoch)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = {k: list(v) for k, v in state["history"].items()}
        self.epoch = list(state["epoch"])
