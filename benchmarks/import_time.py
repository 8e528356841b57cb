"""Cold import time: each framework imported in a fresh interpreter, median of rounds.

Inside the child, ``import torch`` is timed first, then the framework's import: the second
figure is exactly what the framework adds over ``import torch`` (every framework here imports
torch), free of interpreter start-up and of cross-process noise in torch's own import. The
sum of the two is the cold ``import X``. Rounds alternate the frameworks, like the runs do.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys

_PROBE = ("import time; start = time.perf_counter(); import torch; "
          "middle = time.perf_counter(); import {module}; "
          "print(middle - start, time.perf_counter() - middle)")


def time_import(module: str, env: dict[str, str]) -> tuple[float, float]:
    """(seconds of ``import torch``, seconds added by ``import module`` after it)."""
    out = subprocess.run([sys.executable, "-c", _PROBE.format(module=module)], env=env,
                         check=True, capture_output=True, text=True).stdout
    torch_s, added_s = out.strip().splitlines()[-1].split()
    return float(torch_s), float(added_s)


def measure(modules: dict[str, str], rounds: int, env: dict[str, str] | None = None,
            warm: bool = True) -> dict[str, dict[str, float]]:
    """``modules`` maps a label to what follows ``import``; returns seconds per label."""
    env = dict(os.environ if env is None else env)
    if warm:
        for statement in modules.values():  # compile .pyc files, fill the OS file cache
            time_import(statement, env)
    torch_samples: list[float] = []
    added: dict[str, list[float]] = {label: [] for label in modules}
    for _ in range(rounds):
        for label, statement in modules.items():
            torch_s, added_s = time_import(statement, env)
            torch_samples.append(torch_s)
            added[label].append(added_s)
    torch_median = statistics.median(torch_samples) if torch_samples else float("nan")
    figures = {"torch": {"seconds": torch_median, "over_torch": 0.0}}
    for label, values in added.items():
        figures[label] = {"seconds": torch_median + statistics.median(values),
                          "over_torch": statistics.median(values)}
    return figures
