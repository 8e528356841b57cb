"""Instructions per training step, counted by valgrind's callgrind: the engine's cost, no noise.

    python benchmarks/instruction_count.py                   # bare, tiny-128 (~12 min, 2 cores)
    python benchmarks/instruction_count.py --variants bare,typical --json out.json

Timings on a shared VM drift by more than the 2% the engine is allowed (BENCHMARKS.md), and
this VM has no hardware performance counters. callgrind counts instructions exactly, at about
a hundredth of the speed. Each contender (the suite's own ``build`` functions, through
``engine_cost.py``) runs in its own process under callgrind twice, fitting ``--epochs`` E1 and
E2 epochs after the same one-epoch warm-up fit. The difference of the two counts over the
difference in steps is what one more step costs, with the epoch's validation spread over its
steps; the import, the set-up and the fit's fixed cost cancel out.

Counted: every user-space instruction of every thread (a checkpoint writer's too). Not
counted: the kernel's work (syscalls, fsync) and any waiting (for the GIL, a core, the disk).
So the figure is the CPU work the engine adds, not its wall time; for hookline bare and the
raw loop, whose steps make no syscalls, the two are the same thing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
WORKLOAD = "tiny-128"
CHILD = """
import dataclasses, sys, tempfile
from pathlib import Path
import torch
import engine_cost
from tasks import make_task
from workloads import WORKLOADS
torch.set_num_threads(1)
contender, name, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
workload = dataclasses.replace(WORKLOADS[name], epochs=epochs)
task, root = make_task(workload), Path(tempfile.mkdtemp())
engine_cost.build(contender, dataclasses.replace(workload, epochs=1), task, root)()
print("STEPS", engine_cost.build(contender, workload, task, root)())
"""
TOTAL = re.compile(r"I\s+refs:\s+([\d,]+)")


def instructions(log: str) -> int:
    """The total instruction count callgrind prints at exit (``I refs: 1,234``)."""
    found = TOTAL.search(log)
    if found is None:
        raise RuntimeError(f"callgrind printed no instruction count:\n{log[-2000:]}")
    return int(found.group(1).replace(",", ""))


def per_step(short: tuple[int, int], long: tuple[int, int]) -> float:
    """Instructions per step from two (instructions, steps) counts of the same contender."""
    (few, few_steps), (many, many_steps) = short, long
    if many_steps <= few_steps:
        raise ValueError(f"the longer fit took {many_steps} steps, the shorter {few_steps}")
    return (many - few) / (many_steps - few_steps)


def count(contender: str, workload: str, epochs: int) -> tuple[int, int]:
    """(instructions, steps) of one process under callgrind."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    env["PYTHONPATH"] = os.pathsep.join([str(BENCH_DIR), str(BENCH_DIR.parent / "src"),
                                         env.get("PYTHONPATH", "")])
    with tempfile.TemporaryDirectory(prefix="instruction-count-") as folder:
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={folder}/out",
             sys.executable, "-c", CHILD, contender, workload, str(epochs)],
            capture_output=True, text=True, env=env, check=False)
    steps = re.search(r"^STEPS (\d+)$", done.stdout, re.MULTILINE)
    if done.returncode or steps is None:
        raise RuntimeError(f"{contender} ({epochs} epochs) failed under callgrind (exit "
                           f"{done.returncode}):\n{done.stderr[-3000:]}")
    return instructions(done.stderr), int(steps.group(1))


def measure(contenders: list[str], workload: str, epochs: tuple[int, int],
            parallel: int) -> dict[str, dict[str, float]]:
    jobs = [(contender, e) for e in epochs for contender in contenders]
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        counts = dict(zip(jobs, pool.map(lambda job: count(job[0], workload, job[1]), jobs)))
    figures = {}
    for contender in contenders:
        figures[contender] = {"per_step": per_step(counts[(contender, epochs[0])],
                                                   counts[(contender, epochs[1])])}
    reference = figures["raw bare"]["per_step"]
    for figure in figures.values():
        figure["x raw bare"] = figure["per_step"] / reference
        figure["over raw bare"] = figure["per_step"] - reference
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="bare", help="bare, typical or bare,typical")
    parser.add_argument("--workload", default=WORKLOAD)
    parser.add_argument("--epochs", default="1,3", help="the two fit lengths, E1,E2")
    parser.add_argument("--parallel", type=int, default=2, help="processes at once")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: install it (e.g. apt install valgrind)")
    short, long = (int(e) for e in args.epochs.split(","))
    contenders = [f"{framework} {variant}" for variant in args.variants.split(",")
                  for framework in ("raw", "hookline")]
    if "raw bare" not in contenders:
        contenders.insert(0, "raw bare")
    figures = measure(contenders, args.workload, (short, long), args.parallel)
    print(f"{args.workload}, instructions per training step (callgrind, epochs {short} and "
          f"{long}, validation included)")
    print("| contender | instructions per step | x raw bare | over raw bare |")
    print("|---|---|---|---|")
    for contender, figure in figures.items():
        print(f"| {contender} | {figure['per_step']:,.0f} | {figure['x raw bare']:.4f} | "
              f"{figure['over raw bare']:+,.0f} |")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
