"""One measured run in a fresh process: ``python worker.py FRAMEWORK WORKLOAD VARIANT``.

Prints one line ``RESULT {json}`` with the steps taken, the seconds ``fit()`` took and the
process's peak RSS. The framework is imported and its trainer built before the clock starts;
the clock covers the whole ``fit()`` (training steps and validations). The process's CPU
time over the same span is reported too: waiting for a core held by another program does
not count in it, so it is the steadier figure on a shared machine.
"""

from __future__ import annotations

import gc
import importlib
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
from frameworks import FRAMEWORKS
from spec import RunSpec
from workloads import WORKLOADS, make_data, make_torch_model

WARMUP_STEPS = 20


def warm_up(spec: RunSpec) -> None:
    """Run the workload's kernels a few times so no framework pays torch's first calls."""
    model = make_torch_model(spec.workload, seed=spec.seed + 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    batch = spec.workload.batch_size
    for _ in range(WARMUP_STEPS):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(spec.x_train[:batch]),
                                                 spec.y_train[:batch])
        loss.backward()
        optimizer.step()


def measure(framework: str, workload_name: str, variant: str, seed: int = 0) -> dict:
    torch.set_num_threads(1)
    module = importlib.import_module(FRAMEWORKS[framework][0])
    workload = WORKLOADS[workload_name]
    with tempfile.TemporaryDirectory(prefix="hookline-bench-") as workdir:
        spec = RunSpec(workload, variant, *make_data(workload, seed), Path(workdir), seed)
        warm_up(spec)
        fit = module.build(spec)
        gc.collect()
        start, cpu_start = time.perf_counter(), time.process_time()
        steps = fit()
        seconds = time.perf_counter() - start
        cpu_seconds = time.process_time() - cpu_start
    if steps != workload.steps:
        raise SystemExit(f"{framework}/{variant}: took {steps} steps, expected "
                         f"{workload.steps}; the run stopped early or miscounted")
    return {
        "framework": framework, "workload": workload_name, "variant": variant,
        "steps": steps, "seconds": seconds, "cpu_seconds": cpu_seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(argv: list[str]) -> None:
    framework, workload_name, variant = argv
    print("RESULT " + json.dumps(measure(framework, workload_name, variant)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
