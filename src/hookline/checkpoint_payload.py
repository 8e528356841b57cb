"""build_checkpoint: the payload of a full checkpoint, read from a trainer.

The one part of checkpointing that knows the engine: it reads the trainer's model,
optimizers, schedulers, scaler, run state (``hookline.run_state``), data and callbacks.
Writing and reading the file is ``hookline.files``' job.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from hookline.files.checkpoint_format import FORMAT_NAME, FORMAT_VERSION
from hookline.rng import get_rng_state
from hookline.run_state import RunState

__all__ = ["build_checkpoint", "trainer_payload"]


def build_checkpoint(trainer: Any, *, rng: dict[str, Any] | None = None,
                     keep_grads: bool = True, exact: bool = True,
                     note: str = "") -> dict[str, Any]:
    """Everything a Trainer needs to continue exactly where it is now, as a dict: the same as
    ``trainer.state_dict(...)``, for callbacks that receive a trainer-like engine.

    Call it from a callback (after a batch, after an epoch, or when an exception arrives); the
    position recorded is "after the event being handled". It holds the model, the optimizer(s)
    and their class names, ``trainer.lr_schedulers``, the grad scaler, every random generator,
    the run state (``hookline.run_state.RunState``: epoch, optimizer steps, batches done in the
    epoch, the epoch's losses so far, fitness, stop flags, pending accumulated gradients), what
    the data order depends on, every stateful callback's ``state_dict()`` keyed by its
    ``state_key`` and the ``every=``/``once=`` filter counts.

    ``rng`` replaces the current generator states (``hookline.rng.get_rng_state()`` taken
    earlier: OnExceptionCheckpoint passes the states of the last batch boundary);
    ``keep_grads=False`` drops the gradients of a batch that did not finish; ``exact=False``
    with a ``note`` marks a checkpoint whose resume will not be bitwise equal to an
    uninterrupted run (the note is shown on resume).
    """
    return trainer.state_dict(rng=rng, keep_grads=keep_grads, exact=exact, note=note)


def trainer_payload(trainer: Any, *, rng: dict[str, Any] | None = None,
                    keep_grads: bool = True, exact: bool = True,
                    note: str = "") -> dict[str, Any]:
    """The payload of ``Trainer.state_dict`` (see ``build_checkpoint``)."""
    optimizers = trainer.optimizers
    payload = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        # every optimizer by name when there are several (a GAN's generator and critic)
        "optimizers": {str(name): optimizer.state_dict()
                       for name, optimizer in optimizers.items()}
        if len(optimizers) > 1 else None,
        # the class of each optimizer above, in order: a resume refuses another class
        "optimizer_classes": [type(optimizer).__qualname__ for optimizer in (
            optimizers.values() if len(optimizers) > 1 else [trainer.optimizer])],
        "lr_schedulers": [scheduler.state_dict() for scheduler in trainer.lr_schedulers],
        "scaler": trainer.scaler.state_dict() if trainer.scaler is not None else None,
        "rng": get_rng_state() if rng is None else rng,
        "run": RunState.of(trainer, keep_grads=keep_grads, exact=exact, note=note).to_dict(),
        "data": _data_fingerprint(trainer),
        "callbacks": trainer.callbacks.state_dict(),
        "filters": trainer.callbacks.filter_counts(),
        "input_signature": trainer.input_signature,  # hookline.signature
        "meta": {"torch": str(torch.__version__), "created": time.time()},
    }
    return payload


def _data_fingerprint(trainer: Any) -> dict[str, Any]:
    """What the order of the training batches depends on, to check it on resume."""
    data = trainer.train_data
    if hasattr(data, "tensors") and hasattr(data, "order"):  # ArrayBatches
        return {"kind": "arrays", "size": int(data.size), "batch_size": int(data.batch_size),
                "shuffle": bool(data.shuffle), "seed": int(data.seed),
                "drop_last": bool(data.drop_last), "world": int(getattr(data, "world", 1))}
    try:
        length: int | None = len(data)
    except TypeError:
        length = None
    return {"kind": "iterable", "batches": length}

