"""Run the benchmark suite: every framework on the same workloads, alternating runs.

    bash benchmarks/run.sh                 # install the peers, run everything, update BENCHMARKS.md
    python benchmarks/run.py --smoke       # hookline and the raw loop, a few steps (CI)
    python benchmarks/run.py --frameworks raw,hookline --workloads tiny --repeats 3

Each measured run is a fresh ``worker.py`` process. Within a workload, every round runs each
(framework, variant) once, in an order rotated per round, so drift of the machine hits all of
them alike; ratios are taken against the raw loop's run of the same round.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

import import_time
import machine
import report
import stats
from frameworks import FRAMEWORKS
from workloads import WORKLOADS

FULL_REPEATS = {"tiny": 7, "medium": 3}
IMPORT_ROUNDS = 7
SMOKE_FRAMEWORKS = ("raw", "hookline")


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    # Users' imports read cached bytecode; without it every import would recompile.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    paths = [str(REPO / "src"), str(BENCH_DIR), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", KERAS_BACKEND="torch",
               PYTHONHASHSEED="0")
    return env


def run_worker(framework: str, workload: str, variant: str, env: dict[str, str]) -> dict:
    done = subprocess.run([sys.executable, str(BENCH_DIR / "worker.py"), framework, workload,
                           variant], env=env, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"{framework}/{workload}/{variant} failed (exit {done.returncode}):\n"
                         f"{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def plan(frameworks: list[str]) -> list[tuple[str, str]]:
    return [(name, variant) for name in frameworks for variant in FRAMEWORKS[name][2]]


def run_rounds(workload: str, repeats: int, pairs: list[tuple[str, str]],
               env: dict[str, str]) -> list[dict]:
    results = []
    for round_index in range(repeats):
        shift = round_index % len(pairs)
        for framework, variant in pairs[shift:] + pairs[:shift]:
            result = run_worker(framework, workload, variant, env)
            result["round"] = round_index
            results.append(result)
            print(f"  {workload} round {round_index + 1}/{repeats} {framework:>13} "
                  f"{variant:<7} {result['seconds']:7.3f} s", file=sys.stderr, flush=True)
    return results


def run_micro(quick: bool, env: dict[str, str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="hookline-micro-") as tmp:
        out = Path(tmp) / "micro.json"
        command = [sys.executable, str(BENCH_DIR / "micro.py"), "--json", str(out)]
        subprocess.run(command + (["--quick"] if quick else []), env=env, check=True,
                       capture_output=True)
        return json.loads(out.read_text())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="hookline's benchmark suite")
    parser.add_argument("--smoke", action="store_true",
                        help="a few steps of hookline and the raw loop; writes no BENCHMARKS.md")
    parser.add_argument("--frameworks", help=f"comma-separated subset of {list(FRAMEWORKS)}")
    parser.add_argument("--workloads", help="comma-separated subset of tiny,medium")
    parser.add_argument("--repeats", type=int, help="rounds per workload (default 7 tiny, 3 "
                                                    "medium)")
    parser.add_argument("--no-micro", action="store_true", help="skip the micro-benchmarks")
    parser.add_argument("--json", type=Path, help="where to write the raw figures "
                                                  "(default benchmarks/results/latest.json)")
    parser.add_argument("--markdown", type=Path, default=REPO / "BENCHMARKS.md",
                        help="the file whose results section is replaced")
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="measure nothing: write the results section of a saved run "
                             "(a --json file) into --markdown, as the report now shows it")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.render:
        section = report.results_section(json.loads(args.render.read_text()))
        print(section)
        if not args.no_write:
            report.write_into(args.markdown, section)
        return
    started = time.perf_counter()
    if args.smoke:
        frameworks, workloads = list(SMOKE_FRAMEWORKS), ["smoke"]
        repeats = {"smoke": args.repeats or 1}
    else:
        frameworks = args.frameworks.split(",") if args.frameworks else list(FRAMEWORKS)
        workloads = args.workloads.split(",") if args.workloads else list(FULL_REPEATS)
        repeats = {w: args.repeats or FULL_REPEATS.get(w, 3) for w in workloads}
    unknown = [f for f in frameworks if f not in FRAMEWORKS]
    if unknown or "raw" not in frameworks:
        raise SystemExit(f"--frameworks must include raw and come from {list(FRAMEWORKS)}; "
                         f"got {frameworks}")
    env = child_env()
    info = machine.describe()
    if not args.smoke and float(info["load_before"].split()[0]) > 0.5:
        print(f"warning: load average is {info['load_before']}; other work on the machine "
              f"will skew the figures", file=sys.stderr)

    results = []
    for workload in workloads:
        results += run_rounds(workload, repeats[workload], plan(frameworks), env)
    statements = {name: FRAMEWORKS[name][1] for name in frameworks
                  if FRAMEWORKS[name][1] != "torch"}
    imports = import_time.measure(statements, rounds=1 if args.smoke else IMPORT_ROUNDS,
                                  env=env, warm=not args.smoke)
    micro = {} if args.no_micro else run_micro(args.smoke, env)
    info["load_after"] = machine.load_average()

    summary = {
        "machine": info,
        "config": {"repeats": repeats, "smoke": args.smoke,
                   "wall_s": time.perf_counter() - started},
        "workloads": [WORKLOADS[w].to_dict() for w in workloads],
        "rows": [dataclasses.asdict(row) for row in stats.summarise(results)],
        "imports": imports,
        "import_statements": statements,
        "dispatch_us": micro.get("dispatch_us"),
        "checkpoint": micro.get("checkpoint"),
        "runs": results,
    }
    out = args.json or BENCH_DIR / "results" / ("smoke.json" if args.smoke else "latest.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    section = report.results_section(summary)
    print(section)
    if not (args.smoke or args.no_write):
        report.write_into(args.markdown, section)
        print(f"wrote {args.markdown}", file=sys.stderr)


if __name__ == "__main__":
    main()
