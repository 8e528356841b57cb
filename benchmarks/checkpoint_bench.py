"""How long checkpointing a ~100 MB model each epoch stalls the training loop.

Each "epoch" is a few real training steps of the 100 MB model, then a checkpoint. Two figures
per way of saving: the median time spent inside the save call, and the extra wall time per
epoch over a block of epochs without any checkpoint (which also catches a background writer
slowing the next steps down, and includes waiting for the last write).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

WIDTH = 2500  # 4 layers of 2500 x 2500 float32 weights: ~100 MB
LAYERS = 4
STEPS_PER_EPOCH = 5
BATCH = 32

# A saver: (model, path) -> None, plus a finish() that waits for pending writes.
Saver = tuple[Callable[[torch.nn.Module, Path], None], Callable[[], None]]


def _torch_save() -> Saver:
    return (lambda model, path: torch.save(model.state_dict(), path)), (lambda: None)


def _hookline_save_weights() -> Saver:
    from hookline.checkpoint import save_weights
    return (lambda model, path: save_weights(model, path)), (lambda: None)


def _hookline_writer() -> Saver:
    from hookline.checkpoint import CheckpointWriter
    writer = CheckpointWriter()
    return (lambda model, path: writer.save({"model": model.state_dict()}, path)), writer.wait


def savers() -> dict[str, Callable[[], Saver]]:
    """The ways of saving measured."""
    return {
        "torch.save (blocking)": _torch_save,
        "hookline save_weights (blocking, atomic + fsync)": _hookline_save_weights,
        "hookline CheckpointWriter (background write)": _hookline_writer,
    }


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(*[torch.nn.Linear(WIDTH, WIDTH) for _ in range(LAYERS)])


def _epochs(model, optimizer, epochs: int, save, folder: Path) -> tuple[list[float], list[float]]:
    x = torch.randn(BATCH, WIDTH)
    epoch_times, save_times = [], []
    for epoch in range(epochs):
        start = time.perf_counter()
        for _ in range(STEPS_PER_EPOCH):
            optimizer.zero_grad(set_to_none=True)
            model(x).square().mean().backward()
            optimizer.step()
        if save is not None:
            before = time.perf_counter()
            save(model, folder / f"epoch{epoch % 2}.pt")
            save_times.append(time.perf_counter() - before)
        epoch_times.append(time.perf_counter() - start)
    return epoch_times, save_times


def measure(epochs: int = 6) -> dict[str, dict[str, float]]:
    """Per saver: MB written, ms inside the save call (median), ms added per epoch.

    "Added per epoch" compares a block of epochs with checkpoints (plus the wait for the last
    write) to a block without, run just before it, so drift of the machine cancels out.
    """
    torch.set_num_threads(1)
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)
    megabytes = sum(p.numel() * p.element_size() for p in model.parameters()) / 1e6
    results = {}
    with tempfile.TemporaryDirectory(prefix="hookline-ckpt-bench-") as tmp:
        folder = Path(tmp)
        _epochs(model, optimizer, 1, None, folder)  # warm-up
        for name, make in savers().items():
            save, finish = make()
            plain, _ = _epochs(model, optimizer, epochs, None, folder)
            with_save, in_call = _epochs(model, optimizer, epochs, save, folder)
            before = time.perf_counter()
            finish()
            final_wait = time.perf_counter() - before
            results[name] = {
                "model_mb": megabytes,
                "in_call_ms": statistics.median(in_call) * 1e3,
                "added_per_epoch_ms": (sum(with_save) + final_wait - sum(plain)) / epochs * 1e3,
                "final_wait_ms": final_wait * 1e3,
            }
    return results
