"""DeviceStatsMonitor: memory in use and its peak, per epoch, in the logs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from hookline.callback import Callback

__all__ = ["DeviceStatsMonitor", "cpu_memory", "device_memory"]

_MIB = 2**20
_PROC_STATUS = Path("/proc/self/status")


def cpu_memory() -> dict[str, float]:
    """This process' resident memory and its peak, in MiB (what the OS reports)."""
    found: dict[str, float] = {}
    try:
        for line in _PROC_STATUS.read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM") and value.strip().endswith("kB"):
                found[key] = int(value.split()[0]) * 1024 / _MIB
    except OSError:
        pass  # no /proc (macOS, Windows): fall back to the peak from getrusage
    stats: dict[str, float] = {}
    if "VmRSS" in found:
        stats["cpu_memory_mb"] = found["VmRSS"]
    if "VmHWM" in found:
        stats["cpu_peak_memory_mb"] = found["VmHWM"]
    else:
        try:
            import resource
        except ImportError:  # Windows
            return stats
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # ru_maxrss is in bytes on macOS and in KiB elsewhere
        stats["cpu_peak_memory_mb"] = peak / _MIB if sys.platform == "darwin" \
            else peak * 1024 / _MIB
    return stats


def device_memory(device: torch.device) -> dict[str, float]:
    """Memory held by tensors on ``device`` and its peak, in MiB (allocator statistics: no
    device sync)."""
    if device.type == "cuda":
        return {"cuda_memory_mb": torch.cuda.memory_allocated(device) / _MIB,
                "cuda_peak_memory_mb": torch.cuda.max_memory_allocated(device) / _MIB,
                "cuda_reserved_mb": torch.cuda.memory_reserved(device) / _MIB}
    if device.type == "mps":
        return {"mps_memory_mb": torch.mps.current_allocated_memory() / _MIB,
                "mps_driver_memory_mb": torch.mps.driver_allocated_memory() / _MIB}
    return cpu_memory()


class DeviceStatsMonitor(Callback):
    """Add memory statistics to ``trainer.metrics`` after every epoch.

    Args:
        cpu_stats: also add the process' CPU memory when training on an accelerator (on the
            CPU it is always added).

    Keys, all in MiB: on the CPU ``cpu_memory_mb`` (resident set, from ``/proc/self/status``)
    and ``cpu_peak_memory_mb`` (the process' lifetime peak; ``resource.getrusage`` where there
    is no ``/proc``); on CUDA ``cuda_memory_mb`` (``torch.cuda.memory_allocated``),
    ``cuda_peak_memory_mb`` (``max_memory_allocated``, since the process started or
    ``torch.cuda.reset_peak_memory_stats``) and ``cuda_reserved_mb``; on MPS
    ``mps_memory_mb`` and ``mps_driver_memory_mb``. They are read at ``on_fit_epoch_end``
    (after validation) before loggers and History read the metrics.

    Example::

        from hookline.callbacks import DeviceStatsMonitor
        history = Model(net, loss="mse").fit(x, y, epochs=2, callbacks=[DeviceStatsMonitor()])
        history.history["cpu_peak_memory_mb"]
    """

    order = -50  # produces metrics: before the callbacks that read them

    def __init__(self, *, cpu_stats: bool = False) -> None:
        if not isinstance(cpu_stats, bool):
            raise TypeError(f"DeviceStatsMonitor(cpu_stats=...) must be True or False, "
                            f"got {cpu_stats!r}")
        self.cpu_stats = cpu_stats

    def on_fit_epoch_end(self, trainer: Any) -> None:
        device = torch.device(getattr(trainer, "device", "cpu"))
        stats = device_memory(device)
        if self.cpu_stats and device.type != "cpu":
            stats.update(cpu_memory())
        trainer.metrics.update(stats)
