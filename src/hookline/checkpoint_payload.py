"""build_checkpoint: the payload of a full checkpoint, read from a trainer.

The one part of checkpointing that knows the engine: it reads the trainer's model, optimizer,
schedulers, scaler, run state, data and callbacks. Writing and reading the file is
``hookline.files``' job.
"""

from __future__ import annotations

import numbers
import time
from typing import Any

import torch

from hookline.files.checkpoint_format import FORMAT_NAME, FORMAT_VERSION
from hookline.rng import get_rng_state

__all__ = ["build_checkpoint"]


def build_checkpoint(trainer: Any, *, rng: dict[str, Any] | None = None,
                     keep_grads: bool = True, exact: bool = True,
                     note: str = "") -> dict[str, Any]:
    """Everything a Trainer needs to continue exactly where it is now, as a dict.

    Call it from a callback (after a batch, after an epoch, or when an exception arrives); the
    position recorded is "after the event being handled". It holds the model, the optimizer,
    ``trainer.lr_schedulers``, the grad scaler, every random generator, the run state (epoch,
    optimizer steps, batches done in the epoch, the epoch's losses so far, fitness, stop
    flags), what the data order depends on, pending accumulated gradients, and every stateful
    callback's ``state_dict()`` keyed by its ``state_key``.

    ``rng`` replaces the current generator states (``hookline.rng.get_rng_state()`` taken
    earlier: OnExceptionCheckpoint passes the states of the last batch boundary);
    ``keep_grads=False`` drops the gradients of a batch that did not finish; ``exact=False``
    with a ``note`` marks a checkpoint whose resume will not be bitwise equal to an
    uninterrupted run (the note is shown on resume).
    """
    rng = get_rng_state() if rng is None else rng
    losses = list(getattr(trainer, "epoch_losses", ()))
    phase = getattr(trainer, "phase", "train")
    phase = "epoch_done" if phase == "done" else phase  # after fit: its last epoch was done
    grads = {}
    if keep_grads:
        grads = {name: parameter.grad for name, parameter in trainer.model.named_parameters()
                 if parameter.grad is not None}
    scaler = getattr(trainer, "scaler", None)
    payload = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        # every optimizer by name when there are several (a GAN's generator and critic)
        "optimizers": {str(name): optimizer.state_dict() for name, optimizer in
                       (getattr(trainer, "optimizers", None) or {}).items()}
        if len(getattr(trainer, "optimizers", None) or {}) > 1 else None,
        "lr_schedulers": [scheduler.state_dict()
                          for scheduler in getattr(trainer, "lr_schedulers", ())],
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": rng,
        "run": {
            "epoch": int(trainer.epoch),
            "epochs": int(trainer.epochs),
            "phase": phase,
            "batches_done": len(losses),
            "step": int(trainer.step),
            "epoch_losses": torch.stack(losses) if losses else torch.empty(0),
            "loss_names": [str(name) for name in getattr(trainer, "loss_names", ["loss"])],
            "epoch_rng": getattr(trainer, "epoch_rng_state", None),
            "train_metrics": _train_metric_state(getattr(trainer, "train_metric_set", None)),
            "metrics": {str(key): _plain(value) for key, value in trainer.metrics.items()},
            "fitness": _plain(trainer.fitness),
            "best_fitness": _plain(trainer.best_fitness),
            "stop": bool(trainer.stop),
            "stop_reason": str(trainer.stop_reason or ""),
            "skip_rest_of_epoch": bool(getattr(trainer, "skip_rest_of_epoch", False)),
            "grads": grads,
            "exact": bool(exact),
            "note": note,
            # what a rerun must agree with (hookline.resume checks them) and whose run it is
            "run_id": str(getattr(trainer, "run_id", "")),
            "rank": int(getattr(trainer, "rank", 0)),
            "args": _run_args(trainer),
        },
        "data": _data_fingerprint(trainer),
        "callbacks": trainer.callbacks.state_dict(),
        "filters": trainer.callbacks.filter_counts(),
        "input_signature": getattr(trainer, "input_signature", None),  # hookline.signature
        "meta": {"torch": str(torch.__version__), "created": time.time()},
    }
    return payload


def _run_args(trainer: Any) -> dict[str, Any]:
    args = getattr(trainer, "args", None)
    return {"seed": getattr(args, "seed", None), "seeded": bool(getattr(args, "seeded", False)),
            "accumulate": getattr(args, "accumulate", 1),
            "steps_per_epoch": getattr(args, "steps_per_epoch", None),
            "world_size": int(getattr(trainer, "world_size", 1))}


def _plain(value: Any) -> Any:
    """Numbers as Python numbers (a numpy float would need full unpickling)."""
    if isinstance(value, bool) or value is None or isinstance(value, torch.Tensor):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return value


def _train_metric_state(metric_set: Any) -> dict[str, Any] | None:
    return metric_set.state_dict() if metric_set is not None else None


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

