"""Run the benchmark suite: every framework on the same workloads, alternating runs.

    bash benchmarks/run.sh                 # install the peers, run everything, update BENCHMARKS.md
    python benchmarks/run.py --smoke       # hookline and the raw loop, every workload, a few steps (CI)
    python benchmarks/run.py --frameworks raw,hookline --workloads tiny,cnn --repeats tiny=5,cnn=2

Each measured run is a fresh ``worker.py`` process. Within a workload, every round runs each
(framework, variant) once, in an order rotated per round, so drift of the machine hits all of
them alike; ratios are taken against the raw loop's run of the same round. After the
workloads, ``engine_cost.py`` runs in a fresh process: hookline and the raw loop alternating
fit by fit in one process, the figures the issue's engine-cost targets are judged on.
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

# The default suite and its rounds per workload (the quiet-window run sets --repeats).
FULL_REPEATS = {"tiny": 5, "tiny-128": 3, "cnn": 3, "transformer": 3, "custom-step": 3}
SMOKE_WORKLOADS = ("smoke", "smoke-cnn", "smoke-transformer", "smoke-custom-step")
IMPORT_ROUNDS = 7
ENGINE_ROUNDS = 20
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


def run_worker(framework: str, workload: str, variant: str, env: dict[str, str],
               fixed_repeats: int) -> dict:
    done = subprocess.run([sys.executable, str(BENCH_DIR / "worker.py"), framework, workload,
                           variant, str(fixed_repeats)], env=env, capture_output=True,
                          text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"{framework}/{workload}/{variant} failed (exit {done.returncode}):\n"
                         f"{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def plan(frameworks: list[str], workload: str) -> list[tuple[str, str]]:
    """The (framework, variant) runs of a round: the variants both have."""
    wanted = WORKLOADS[workload].variants
    return [(name, variant) for name in frameworks for variant in FRAMEWORKS[name][2]
            if variant in wanted]


def run_rounds(workload: str, repeats: int, frameworks: list[str], env: dict[str, str],
               fixed_repeats: int = 7) -> list[dict]:
    results = []
    pairs = plan(frameworks, workload)
    for round_index in range(repeats):
        shift = round_index % len(pairs)
        for framework, variant in pairs[shift:] + pairs[:shift]:
            result = run_worker(framework, workload, variant, env, fixed_repeats)
            result["round"] = round_index
            results.append(result)
            print(f"  {workload} round {round_index + 1}/{repeats} {framework:>13} "
                  f"{variant:<7} {result['seconds']:7.3f} s", file=sys.stderr, flush=True)
    return results


def run_script(script: str, quick: bool, env: dict[str, str],
               options: tuple[str, ...] = ()) -> dict:
    """Run ``micro.py``, ``scale_bench.py`` or ``engine_cost.py`` in a fresh process; its
    figures as a dict."""
    with tempfile.TemporaryDirectory(prefix="hookline-micro-") as tmp:
        out = Path(tmp) / "figures.json"
        command = [sys.executable, str(BENCH_DIR / script), "--json", str(out), *options]
        done = subprocess.run(command + (["--quick"] if quick else []), env=env,
                              capture_output=True, text=True, check=False)
        if done.returncode:
            raise SystemExit(f"{script} failed (exit {done.returncode}):\n"
                             f"{done.stderr[-3000:]}")
        return json.loads(out.read_text())


def _repeats(text: str) -> dict[str, int] | int:
    """``--repeats 3`` or ``--repeats tiny=5,cnn=2``."""
    try:
        if "=" not in text:
            return int(text)
        pairs = [part.split("=", 1) for part in text.split(",")]
        return {name: int(count) for name, count in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected N or NAME=N,NAME=N (e.g. tiny=5,cnn=2), got {text!r}") from None


def rounds_for(workload: str, repeats: dict[str, int] | int | None, smoke: bool) -> int:
    if isinstance(repeats, int):
        return repeats
    if repeats and workload in repeats:
        return repeats[workload]
    return 1 if smoke else FULL_REPEATS.get(workload, 3)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="hookline's benchmark suite")
    parser.add_argument("--smoke", action="store_true",
                        help="a few steps of hookline and the raw loop; writes no BENCHMARKS.md")
    parser.add_argument("--frameworks", help=f"comma-separated subset of {list(FRAMEWORKS)}")
    parser.add_argument("--workloads", help=f"comma-separated subset of {list(WORKLOADS)} "
                                            f"(default {','.join(FULL_REPEATS)})")
    parser.add_argument("--repeats", type=_repeats,
                        help="rounds per workload: N for all, or NAME=N,... for some (the "
                             "others keep their default: " + ", ".join(
                                 f"{k} {v}" for k, v in FULL_REPEATS.items()) + ")")
    parser.add_argument("--no-micro", action="store_true",
                        help="skip the micro-benchmarks and the callback-scale figures")
    parser.add_argument("--engine-rounds", type=int, default=ENGINE_ROUNDS,
                        help="rounds of engine_cost.py, the in-process hookline/raw "
                             "alternation the targets are judged on (0: skip it)")
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
        frameworks, workloads = list(SMOKE_FRAMEWORKS), list(SMOKE_WORKLOADS)
    else:
        frameworks = args.frameworks.split(",") if args.frameworks else list(FRAMEWORKS)
        workloads = args.workloads.split(",") if args.workloads else list(FULL_REPEATS)
    if any(w not in WORKLOADS for w in workloads):
        raise SystemExit(f"--workloads must come from {list(WORKLOADS)}; got {workloads}")
    if isinstance(args.repeats, dict) and (extra := set(args.repeats) - set(workloads)):
        raise SystemExit(f"--repeats names {sorted(extra)}, which this run does not measure "
                         f"(workloads: {workloads})")
    repeats = {w: rounds_for(w, args.repeats, args.smoke) for w in workloads}
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
        results += run_rounds(workload, repeats[workload], frameworks, env,
                              fixed_repeats=1 if args.smoke else 7)
    statements = {name: FRAMEWORKS[name][1] for name in frameworks
                  if FRAMEWORKS[name][1] != "torch"}
    imports = import_time.measure(statements, rounds=1 if args.smoke else IMPORT_ROUNDS,
                                  env=env, warm=not args.smoke)
    micro = {} if args.no_micro else run_script("micro.py", args.smoke, env)
    scale = {} if args.no_micro else run_script("scale_bench.py", args.smoke, env)
    engine = {} if args.engine_rounds <= 0 else run_script(
        "engine_cost.py", args.smoke, env, ("--rounds", str(args.engine_rounds)))
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
        "scale": scale or None,
        "engine": engine or None,
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
