"""Instructions per training step, counted by valgrind's callgrind: the engine's cost, no noise.

    python benchmarks/instruction_count.py                   # bare, tiny-128 (~12 min, 2 cores)
    python benchmarks/instruction_count.py --variants bare,typical --json out.json
    python benchmarks/instruction_count.py --variants typical --keep /tmp/callgrind

Timings on a shared VM drift by more than the 2% the engine is allowed (BENCHMARKS.md), and
this VM has no hardware performance counters. callgrind counts instructions exactly, at about
a hundredth of the speed. Each contender (the suite's own ``build`` functions, through
``engine_cost.py``) runs in its own process under callgrind twice, fitting ``--epochs`` E1 and
E2 epochs after the same one-epoch warm-up fit. The difference of the two counts over the
difference in steps is what one more step costs, with the epoch's validation spread over its
steps; the import, the set-up and the fit's fixed cost cancel out.

Counted: every user-space instruction of every thread (a checkpoint writer's too), and
separately those of the main thread, the loop's (``--separate-threads=yes``): a checkpoint
writer's thread runs beside the loop on another core, so the loop's own figure is what it
waits for, and the total is the CPU work. Not counted: the kernel's work (syscalls, fsync)
and any waiting (for the GIL, a core, the disk). So a figure is CPU work, not wall time; for
hookline bare and the raw loop, whose steps make no syscalls, the two are the same thing.
``--keep DIR`` keeps the callgrind files, for ``callgrind_annotate``.
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


def thread_totals(out: Path) -> dict[int, int]:
    """Instructions per thread (1 is the main one, the loop's) from the files callgrind
    writes with ``--separate-threads=yes``: ``<out>-01``, ``<out>-02``, ..."""
    totals = {}
    for part in sorted(out.parent.glob(f"{out.name}-*")):
        text = part.read_text(errors="replace")
        thread = re.search(r"^thread: (\d+)$", text, re.MULTILINE)
        total = re.search(r"^totals: (\d+)", text, re.MULTILINE)
        if thread is None or total is None:
            raise RuntimeError(f"{part} holds no thread number or totals line")
        totals[int(thread.group(1))] = int(total.group(1))
    if 1 not in totals:
        raise RuntimeError(f"callgrind wrote no file for the main thread next to {out}")
    return totals


def count(contender: str, workload: str, epochs: int,
          keep: Path | None = None) -> tuple[int, int, int]:
    """(instructions, the main thread's instructions, steps) of one process under
    callgrind; with ``keep``, its callgrind output (one file per thread) is kept there
    (``callgrind_annotate`` reads where the instructions went)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    env["PYTHONPATH"] = os.pathsep.join([str(BENCH_DIR), str(BENCH_DIR.parent / "src"),
                                         env.get("PYTHONPATH", "")])
    with tempfile.TemporaryDirectory(prefix="instruction-count-") as folder:
        out = Path(folder) / "out" if keep is None else \
            keep / f"callgrind.{contender.replace(' ', '-')}.{epochs}"
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", "--separate-threads=yes",
             f"--callgrind-out-file={out}",
             sys.executable, "-c", CHILD, contender, workload, str(epochs)],
            capture_output=True, text=True, env=env, check=False)
        steps = re.search(r"^STEPS (\d+)$", done.stdout, re.MULTILINE)
        if done.returncode or steps is None:
            raise RuntimeError(f"{contender} ({epochs} epochs) failed under callgrind (exit "
                               f"{done.returncode}):\n{done.stderr[-3000:]}")
        loop = thread_totals(out)[1]
    return instructions(done.stderr), loop, int(steps.group(1))


def measure(contenders: list[str], workload: str, epochs: tuple[int, int],
            parallel: int, keep: Path | None = None) -> dict[str, dict[str, float]]:
    jobs = [(contender, e) for e in epochs for contender in contenders]
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        counts = dict(zip(jobs, pool.map(lambda job: count(job[0], workload, job[1], keep),
                                         jobs)))
    figures = {}
    for contender in contenders:
        (total, loop, steps), (total_long, loop_long, steps_long) = (
            counts[(contender, epochs[0])], counts[(contender, epochs[1])])
        figures[contender] = {
            "per_step": per_step((total, steps), (total_long, steps_long)),
            "loop_per_step": per_step((loop, steps), (loop_long, steps_long))}
    reference, loop_reference = (figures["raw bare"]["per_step"],
                                 figures["raw bare"]["loop_per_step"])
    for figure in figures.values():
        figure["x raw bare"] = figure["per_step"] / reference
        figure["over raw bare"] = figure["per_step"] - reference
        figure["loop x raw bare"] = figure["loop_per_step"] / loop_reference
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="bare", help="bare, typical or bare,typical")
    parser.add_argument("--workload", default=WORKLOAD)
    parser.add_argument("--epochs", default="1,3", help="the two fit lengths, E1,E2")
    parser.add_argument("--parallel", type=int, default=2, help="processes at once")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", type=Path, help="keep the callgrind outputs in this folder")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: install it (e.g. apt install valgrind)")
    short, long = (int(e) for e in args.epochs.split(","))
    contenders = [f"{framework} {variant}" for variant in args.variants.split(",")
                  for framework in ("raw", "hookline")]
    if "raw bare" not in contenders:
        contenders.insert(0, "raw bare")
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    figures = measure(contenders, args.workload, (short, long), args.parallel, args.keep)
    print(f"{args.workload}, instructions per training step (callgrind, epochs {short} and "
          f"{long}, validation included)")
    print("| contender | instructions per step | x raw bare | over raw bare | the loop's "
          "thread alone | x raw bare |")
    print("|---|---|---|---|---|---|")
    for contender, figure in figures.items():
        print(f"| {contender} | {figure['per_step']:,.0f} | {figure['x raw bare']:.4f} | "
              f"{figure['over raw bare']:+,.0f} | {figure['loop_per_step']:,.0f} | "
              f"{figure['loop x raw bare']:.4f} |")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
