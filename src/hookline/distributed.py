"""Rank helpers over torch.distributed, so callbacks and the engine can agree across processes.

hookline does not launch processes: start them with ``torchrun`` (gloo on CPU, NCCL on GPU)
and call ``torch.distributed.init_process_group`` (or let ``init_from_env()`` do it). When a
process group is initialised, the Trainer shards array data per rank, wraps the model in
DistributedDataParallel, averages epoch metrics over ranks, calls rank-zero-only callbacks
(loggers, checkpoint writers) on rank 0 alone, and agrees on stopping: if any rank asks to stop,
every rank stops after the same epoch, so none is left waiting in a collective.
"""

from __future__ import annotations

import atexit
import os
import sys
import uuid
from datetime import timedelta

import torch
import torch.distributed as dist

# How long a rank waits at exit for the others before destroying its process group.
EXIT_WAIT_SECONDS = 30

__all__ = ["all_gather_ints", "all_mean", "any_rank", "init_from_env", "is_distributed",
           "new_run_id", "rank", "world_size"]


def is_distributed() -> bool:
    """Whether a process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """The number of processes (1 when not distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def init_from_env(backend: str | None = None) -> bool:
    """Initialise the process group from torchrun's environment; False when not under torchrun."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return False
    if not dist.is_initialized():
        chosen = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        dist.init_process_group(backend=chosen)
        atexit.register(_shut_down)
    return True


def _shut_down() -> None:
    """At exit, wait (at most ``EXIT_WAIT_SECONDS``) until every rank has reached its exit, then
    destroy the group ``init_from_env`` made. A gloo group torn down while a peer is still in its
    last collective can abort a process whose run had finished ("terminate called without an
    active exception", exit code -6: 3 of 20 two-rank test runs without this).

    The ranks meet through the group's key-value store, not a barrier: a barrier is a collective,
    so a rank that left early would wait in it for a peer stuck in another collective, and a
    collective still pending at exit holds the process until the group's timeout (30 min). A
    rank leaving on an uncaught exception does not wait at all, so its peers fail at once and
    torchrun stops the job."""
    if not is_distributed() or getattr(sys, "last_value", None) is not None:
        return
    store = dist.distributed_c10d._get_default_store()
    try:
        store.set(f"hookline/exit/{rank()}", "1")
        store.wait([f"hookline/exit/{other}" for other in range(world_size())],
                   timedelta(seconds=EXIT_WAIT_SECONDS))
    except RuntimeError:  # a rank never came (it failed, or was killed), or the store is gone
        return
    dist.destroy_process_group()


# The tensors of the latest collective, held until the next one. gloo's worker thread may drop
# its reference to them after the call has returned; were it the last owner, it would free
# their Python objects itself, and at interpreter exit (GIL gone) that aborts a process whose
# run had finished ("terminate called without an active exception", exit code -6).
_in_flight: list[torch.Tensor] = []


def _hold(*tensors: torch.Tensor) -> None:
    _in_flight[:] = tensors


def _device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on at least one (a collective: all must call)."""
    if not is_distributed():
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=_device())
    _hold(value)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def all_mean(values: dict[str, float]) -> dict[str, float]:
    """The mean of each value over ranks (a collective: every rank passes the same keys)."""
    if not is_distributed() or not values:
        return values
    keys = list(values)  # every rank built the dict in the same order
    tensor = torch.tensor([float(values[key]) for key in keys], dtype=torch.float64,
                          device=_device())
    _hold(tensor)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    tensor /= dist.get_world_size()
    return {key: float(value) for key, value in zip(keys, tensor.tolist())}


def all_gather_ints(values: list[int]) -> list[list[int]]:
    """Every rank's ``values``, in rank order (a collective: every rank passes as many)."""
    if not is_distributed():
        return [list(values)]
    mine = torch.tensor(values, dtype=torch.int64, device=_device())
    gathered = [torch.empty_like(mine) for _ in range(dist.get_world_size())]
    _hold(mine, *gathered)
    dist.all_gather(gathered, mine)
    return [row.tolist() for row in gathered]


def new_run_id() -> str:
    """A fresh run id (12 hex digits), rank 0's on every rank (a collective when distributed):
    the id names the run, so the ranks' backups can be told apart from another run's."""
    mine = int(uuid.uuid4().hex[:12], 16)
    return f"{all_gather_ints([mine])[0][0]:012x}"
