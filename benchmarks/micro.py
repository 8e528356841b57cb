"""Micro-benchmarks: event dispatch cost and the checkpoint stall of a 100 MB model.

    python benchmarks/micro.py            # both, printed as markdown
    python benchmarks/micro.py --quick    # dispatch only, fewer loops (the smoke run)
    python benchmarks/micro.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import checkpoint_bench
import dispatch_bench
import report


def run(quick: bool = False) -> dict:
    if quick:
        return {"dispatch_us": dispatch_bench.measure(number=20_000, repeats=3),
                "checkpoint": {}}
    return {"dispatch_us": dispatch_bench.measure(), "checkpoint": checkpoint_bench.measure()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="dispatch only, fewer loops")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    figures = run(args.quick)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    print(report.dispatch_table(figures["dispatch_us"]))
    if figures["checkpoint"]:
        print()
        print(report.checkpoint_table(figures["checkpoint"]))


if __name__ == "__main__":
    main()
