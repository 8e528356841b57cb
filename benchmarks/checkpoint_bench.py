"""How long checkpointing a ~100 MB model each epoch stalls the training loop.

Each "epoch" is a few real training steps of the 100 MB model, then a checkpoint. Two figures
per way of saving: the median time spent inside the save call, and the median extra wall time
per epoch over epochs without any checkpoint (which also catches a background writer slowing
the next steps down). The last write is waited for before the clock stops.
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
STEPS_PER_EPOCH = 2
BATCH = 32

# A saver: (model, path) -> None, plus a finish() that waits for pending writes.
Saver = tuple[Callable[[torch.nn.Module, Path], None], Callable[[], None]]


def _torch_save() -> Saver:
    return (lambda model, path: torch.save(model.state_dict(), path)), (lambda: None)


def _hookline_save_weights() -> Saver:
    from hookline.checkpoint import save_weights
    return (lambda model, path: save_weights(model, path)), (lambda: None)


def savers() -> dict[str, Callable[[], Saver]]:
    """The ways of saving measured; hookline's background writer joins when it exists."""
    found: dict[str, Callable[[], Saver]] = {"torch.save (blocking)": _torch_save}
    try:
        import hookline.checkpoint as checkpoint
    except ImportError:
        return found
    if hasattr(checkpoint, "save_weights"):
        found["hookline save_weights (blocking, fsync)"] = _hookline_save_weights
    return found


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
    """Per saver: MB written, ms inside the save call, ms added per epoch (medians)."""
    torch.set_num_threads(1)
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)
    megabytes = sum(p.numel() * p.element_size() for p in model.parameters()) / 1e6
    results = {}
    with tempfile.TemporaryDirectory(prefix="hookline-ckpt-bench-") as tmp:
        folder = Path(tmp)
        _epochs(model, optimizer, 1, None, folder)  # warm-up
        plain, _ = _epochs(model, optimizer, epochs, None, folder)
        for name, make in savers().items():
            save, finish = make()
            with_save, in_call = _epochs(model, optimizer, epochs, save, folder)
            before = time.perf_counter()
            finish()
            results[name] = {
                "model_mb": megabytes,
                "in_call_ms": statistics.median(in_call) * 1e3,
                "added_per_epoch_ms": (statistics.median(with_save)
                                       - statistics.median(plain)) * 1e3,
                "final_wait_ms": (time.perf_counter() - before) * 1e3,
            }
    return results
