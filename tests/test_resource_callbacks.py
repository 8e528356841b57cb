"""EmptyCache (gc and device cache, on schedule) and DeviceStatsMonitor (memory in the logs)."""

from __future__ import annotations

import resource
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from hookline import Trainer
from hookline.callbacks import DeviceStatsMonitor, EmptyCache, History, LambdaCallback
from hookline.callbacks import device_stats_monitor as stats_module
from hookline.callbacks import empty_cache as cache_module
from hookline.testing import tiny_data, tiny_model


def _fit(callbacks, *, epochs=5):
    trainer = Trainer(tiny_model(), loss="cross_entropy", train_data=tiny_data(32),
                      epochs=epochs, batch_size=16, seed=0, verbose=0, callbacks=callbacks)
    trainer.fit()
    return trainer


@pytest.fixture
def collections(monkeypatch):
    calls = []
    monkeypatch.setattr(cache_module.gc, "collect", lambda *args: calls.append(args) or 0)
    return calls


@pytest.mark.parametrize(("every", "at_end", "expected"), [
    (1, True, 6),   # five epochs + the end of training
    (2, True, 3),   # epochs 2 and 4 + the end
    (2, False, 2),
    (0, True, 1),   # only the end
    (7, False, 0),  # never reached in five epochs
])
def test_empty_cache_collects_garbage_on_schedule(collections, every, at_end, expected):
    callback = EmptyCache(every_n_epochs=every, at_train_end=at_end)
    _fit([callback])
    assert len(collections) == expected == callback.cleanups


@pytest.mark.parametrize("kind", ["cuda", "mps", "cpu"])
def test_empty_cache_empties_the_cache_of_the_engines_device(monkeypatch, collections, kind):
    emptied = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append("cuda"))
    monkeypatch.setattr(torch.mps, "empty_cache", lambda: emptied.append("mps"))
    EmptyCache().clean(SimpleNamespace(device=torch.device(kind)))
    assert emptied == ([] if kind == "cpu" else [kind])
    assert len(collections) == 1


@pytest.mark.parametrize("every", [-1, "2", 1.5, True])
def test_empty_cache_rejects_bad_schedules(every):
    with pytest.raises(ValueError, match="every_n_epochs"):
        EmptyCache(every_n_epochs=every)


def test_cpu_stats_come_from_the_process_and_follow_its_memory():
    held = []

    def allocate(trainer):
        if trainer.epoch == 1:
            block = np.ones(160 * 2**20 // 8)  # 160 MiB, touched so it is resident
            held.append(block)

    grow = LambdaCallback(on_train_epoch_start=allocate)
    trainer = _fit([grow, DeviceStatsMonitor()], epochs=2)
    history = trainer.callbacks.find(History)[0].history
    used, peak = history["cpu_memory_mb"], history["cpu_peak_memory_mb"]
    assert used[1] - used[0] > 140  # the allocation shows in the resident set
    assert all(p >= u for p, u in zip(peak, used, strict=True))
    assert peak[1] <= resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 + 1
    held.clear()


def test_cpu_stats_without_proc_use_getrusage(monkeypatch, tmp_path):
    monkeypatch.setattr(stats_module, "_PROC_STATUS", tmp_path / "missing")
    stats = stats_module.cpu_memory()
    assert list(stats) == ["cpu_peak_memory_mb"]
    rusage_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert stats["cpu_peak_memory_mb"] == pytest.approx(rusage_mb, rel=0.05)


def test_cuda_stats_come_from_torch_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 3 * 2**20)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 5 * 2**20)
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 8 * 2**20)
    engine = SimpleNamespace(device=torch.device("cuda"), metrics={"loss": 1.0})
    DeviceStatsMonitor().on_fit_epoch_end(engine)
    assert engine.metrics == {"loss": 1.0, "cuda_memory_mb": 3.0, "cuda_peak_memory_mb": 5.0,
                              "cuda_reserved_mb": 8.0}
    with_cpu = SimpleNamespace(device=torch.device("cuda"), metrics={})
    DeviceStatsMonitor(cpu_stats=True).on_fit_epoch_end(with_cpu)
    assert "cuda_memory_mb" in with_cpu.metrics and "cpu_peak_memory_mb" in with_cpu.metrics


def test_device_stats_bad_option():
    with pytest.raises(TypeError, match="cpu_stats"):
        DeviceStatsMonitor(cpu_stats="yes")
