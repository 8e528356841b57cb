"""Capture and restore every random number generator a training run draws from.

A resumed run is only bitwise equal to an uninterrupted one if dropout, data augmentation and
a DataLoader's shuffle draw the same numbers, so a checkpoint keeps the state of Python's
``random``, NumPy's global generator, torch's CPU generator and each CUDA device's generator.
The states are plain numbers, tuples and tensors, so they load with weights-only unpickling.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from hookline.user_warning import warn

__all__ = ["get_rng_state", "set_rng_state"]


def get_rng_state() -> dict[str, Any]:
    """The state of every generator, as plain data (tensors, ints, tuples, lists)."""
    numpy_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": numpy_state["state"]["key"].tolist(),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": [],
    }
    # Asking for CUDA states would initialise CUDA in a CPU-only run (slow, and unsafe in a
    # process that forks DataLoader workers later): only read them when CUDA is in use.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``get_rng_state`` returned."""
    python_state = state["python"]
    random.setstate((python_state[0], tuple(python_state[1]), python_state[2]))
    numpy_state = state["numpy"]
    np.random.set_state({
        "bit_generator": numpy_state["bit_generator"],
        "state": {"key": np.asarray(numpy_state["key"], dtype=np.uint32),
                  "pos": numpy_state["pos"]},
        "has_gauss": numpy_state["has_gauss"],
        "gauss": numpy_state["gauss"],
    })
    torch.set_rng_state(state["torch"])
    cuda_states = state.get("cuda") or []
    if not cuda_states:
        return
    if not torch.cuda.is_available():
        warn("the checkpoint holds CUDA random states but CUDA is not available here; "
             "GPU random draws (dropout on the GPU) will differ from the original run",
             RuntimeWarning)
        return
    if len(cuda_states) != torch.cuda.device_count():
        warn(f"the checkpoint holds random states for {len(cuda_states)} CUDA "
             f"device(s) but {torch.cuda.device_count()} are visible; the first "
             f"{min(len(cuda_states), torch.cuda.device_count())} are restored",
             RuntimeWarning)
    for device, cuda_state in enumerate(cuda_states[:torch.cuda.device_count()]):
        torch.cuda.set_rng_state(cuda_state, device)
