"""One measured run in a fresh process: ``python worker.py FRAMEWORK WORKLOAD VARIANT [N]``.

Prints one line ``RESULT {json}`` with the steps taken, the seconds ``fit()`` took and the
process's peak RSS. The framework is imported and its trainer built before the clock starts;
the clock covers the whole ``fit()`` (training steps and validations). The process's CPU
time over the same span is reported too: waiting for a core held by another program does
not count in it, so it is the steadier figure on a shared machine.

The bare variant then measures the fixed costs, on one in-process batch: A = build + fit of
one step without validation, B = the same with a validation pass of one batch (alternating,
``FIXED_REPEATS`` times each, the fastest of each kept). The fixed cost of a fit is A minus one training
step, the fixed cost of a validation pass is B - A minus one validation batch; the step and
the batch are timed in plain torch during the warm-up.
"""

from __future__ import annotations

import dataclasses
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
from tasks import Task, loss_of, make_task, val_loss_of
from workloads import WORKLOADS, Workload

FIXED_REPEATS = 7


def warm_up(task: Task, workload: Workload, seed: int) -> tuple[float, float]:
    """Run the workload's kernels a few times so no framework pays torch's first calls;
    returns the fastest seconds of one training step and of one validation batch."""
    model = task.make_model(seed + 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    steps, vals = [], []
    for _ in range(workload.warmup_steps):
        start = time.perf_counter()
        optimizer.zero_grad()
        loss_of(task.kind, model, task.first_train).backward()
        optimizer.step()
        steps.append(time.perf_counter() - start)
        start = time.perf_counter()
        with torch.no_grad():
            val_loss_of(task.kind, model, task.first_val)
        vals.append(time.perf_counter() - start)
    return min(steps[1:]), min(vals[1:])


def fixed_costs(module, spec: RunSpec, step_s: float, val_s: float,
                repeats: int = FIXED_REPEATS) -> dict[str, float]:
    one = dataclasses.replace(spec.workload, steps_per_epoch=1, epochs=1)
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for with_val in (False, True):
            with tempfile.TemporaryDirectory(prefix="hookline-fixed-") as workdir:
                single = dataclasses.replace(spec, workload=one, task=spec.task.single(with_val),
                                             workdir=Path(workdir))
                gc.collect()
                start = time.perf_counter()
                steps = module.build(single)()
                times[with_val].append(time.perf_counter() - start)
            if steps != 1:
                raise SystemExit(f"the one-batch fit took {steps} steps, expected 1")
    # the fastest of the repeats: other work on the machine only ever adds time
    fit_s, with_val_s = min(times[False]), min(times[True])
    return {"fit_fixed_ms": (fit_s - step_s) * 1e3,
            "val_fixed_ms": (with_val_s - fit_s - val_s) * 1e3,
            "step_ms": step_s * 1e3}


def measure(framework: str, workload_name: str, variant: str, seed: int = 0,
            fixed_repeats: int = FIXED_REPEATS) -> dict:
    torch.set_num_threads(1)
    module = importlib.import_module(FRAMEWORKS[framework][0])
    workload = WORKLOADS[workload_name]
    with tempfile.TemporaryDirectory(prefix="hookline-bench-") as workdir:
        spec = RunSpec(workload, variant, make_task(workload, seed), Path(workdir), seed)
        step_s, val_s = warm_up(spec.task, workload, seed)
        fit = module.build(spec)
        gc.collect()
        start, cpu_start = time.perf_counter(), time.process_time()
        steps = fit()
        seconds = time.perf_counter() - start
        cpu_seconds = time.process_time() - cpu_start
        peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        del fit
    if steps != workload.steps:
        raise SystemExit(f"{framework}/{variant}: took {steps} steps, expected "
                         f"{workload.steps}; the run stopped early or miscounted")
    result = {
        "framework": framework, "workload": workload_name, "variant": variant,
        "steps": steps, "seconds": seconds, "cpu_seconds": cpu_seconds,
        "peak_rss_mb": peak_rss_mb,
    }
    if variant == "bare":
        result.update(fixed_costs(module, spec, step_s, val_s, fixed_repeats))
    return result


def main(argv: list[str]) -> None:
    framework, workload_name, variant = argv[:3]
    repeats = int(argv[3]) if len(argv) > 3 else FIXED_REPEATS  # N: the fixed costs' repeats
    print("RESULT " + json.dumps(measure(framework, workload_name, variant,
                                         fixed_repeats=repeats)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
