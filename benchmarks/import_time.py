"""Cold import time: each import in a fresh interpreter, timed inside it, median of rounds.

The clock runs inside the child around the import statement only, so interpreter start-up
noise is left out; the figure reported per framework is its median minus ``import torch``'s
median (every framework here imports torch). Rounds alternate the modules like the runs do.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys

_PROBE = ("import time; start = time.perf_counter(); import {module}; "
          "print(time.perf_counter() - start)")


def time_import(module: str, env: dict[str, str]) -> float:
    out = subprocess.run([sys.executable, "-c", _PROBE.format(module=module)], env=env,
                         check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def measure(modules: dict[str, str], rounds: int, env: dict[str, str] | None = None
            ) -> dict[str, dict[str, float]]:
    """``modules`` maps a label to an import statement body; returns seconds per label."""
    env = dict(os.environ if env is None else env)
    plan = {"torch": "torch", **modules}
    for statement in plan.values():  # compile .pyc files and fill the OS file cache
        time_import(statement, env)
    samples: dict[str, list[float]] = {label: [] for label in plan}
    for _ in range(rounds):
        for label, statement in plan.items():
            samples[label].append(time_import(statement, env))
    torch_median = statistics.median(samples["torch"])
    return {label: {"seconds": statistics.median(values),
                    "over_torch": statistics.median(values) - torch_median}
            for label, values in samples.items()}
