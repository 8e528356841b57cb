"""EmptyCache: give memory back between epochs (device allocator cache and Python garbage)."""

from __future__ import annotations

import gc
from typing import Any

import torch

from hookline.callback import Callback

__all__ = ["EmptyCache", "empty_device_cache"]


def empty_device_cache(device: torch.device | str | None) -> None:
    """Release the cached blocks of ``device``'s allocator (CUDA or MPS; the CPU has none)."""
    kind = torch.device(device).type if device is not None else "cpu"
    if kind == "cuda":
        torch.cuda.empty_cache()
    elif kind == "mps":
        mps = getattr(torch, "mps", None)
        if mps is not None and hasattr(mps, "empty_cache"):
            mps.empty_cache()


class EmptyCache(Callback):
    """Run ``gc.collect()`` and empty the device's allocator cache every few epochs.

    Args:
        every_n_epochs: clean up after every n-th epoch (after validation); 0 only at the end.
        at_train_end: also clean up when training ends.

    On CUDA it calls ``torch.cuda.empty_cache()``, on MPS ``torch.mps.empty_cache()``; on the
    CPU only the garbage collector runs. Emptying the cache does not free live tensors; it
    returns cached blocks to the driver, which helps when other processes share the GPU or
    memory is fragmented, at the cost of re-allocating later. ``cleanups`` counts the runs.

    Example::

        from hookline.callbacks import EmptyCache
        Trainer(model, loss="mse", train_data=(x, y), epochs=10,
                callbacks=[EmptyCache(every_n_epochs=2)]).fit()
    """

    order = 100  # after everything else at the epoch's end has let go of its tensors

    def __init__(self, every_n_epochs: int = 1, *, at_train_end: bool = True) -> None:
        if isinstance(every_n_epochs, bool) or not isinstance(every_n_epochs, int) \
                or every_n_epochs < 0:
            raise ValueError(f"EmptyCache(every_n_epochs=...) must be an integer >= 0 "
                             f"(0: only at the end of training), got {every_n_epochs!r}")
        self.every_n_epochs = every_n_epochs
        self.at_train_end = at_train_end
        self.cleanups = 0

    def on_fit_epoch_end(self, trainer: Any) -> None:
        if self.every_n_epochs and (trainer.epoch + 1) % self.every_n_epochs == 0:
            self.clean(trainer)

    def on_train_end(self, trainer: Any) -> None:
        if self.at_train_end:
            self.clean(trainer)

    def clean(self, engine: Any) -> None:
        """Collect garbage, then empty the allocator cache of the engine's device."""
        gc.collect()
        empty_device_cache(getattr(engine, "device", None))
        self.cleanups += 1
