"""Turn the measured runs into the table's figures.

Ratios and overheads are paired by round: each run is divided by the raw loop's bare run of
the same workload in the same round (runs alternate, so both saw the same machine state),
then the median over rounds is taken. That is steadier than a ratio of two medians.

Beside it stands the ratio of best runs: each contender's fastest run over the raw loop's
fastest. Other work on the machine only ever adds time, so the fastest of several runs is the
closest to what the code itself costs; on a shared VM whose interference lands on some runs
and not others, a median over 7 rounds can be the interference's (one run put hookline bare
at 1.06x the raw loop and hookline typical, which does strictly more work, at 0.96x; their
best runs said 0.96x and 0.98x).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

BASELINE = ("raw", "bare")


@dataclass(frozen=True)
class Row:
    workload: str
    framework: str
    variant: str
    runs: int
    steps: int
    steps_per_s: float
    overhead_us: float  # per step, against the raw loop (bare) of the same round
    ratio: float  # seconds / raw loop (bare) seconds, same round
    cpu_ratio: float  # the same with CPU seconds: less sensitive to other programs' load
    peak_rss_mb: float
    best_ratio: float = math.nan  # fastest run / the raw loop's (bare) fastest run
    # build + fit of one step, less the step; a validation pass of one batch, less the batch
    fit_fixed_ms: float = math.nan
    val_fixed_ms: float = math.nan


def summarise(results: list[dict]) -> list[Row]:
    """One row per (workload, framework, variant), in the order they first appear."""
    baseline: dict[tuple[str, int], dict] = {
        (r["workload"], r["round"]): r for r in results
        if (r["framework"], r["variant"]) == BASELINE}
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for result in results:
        key = (result["workload"], result["framework"], result["variant"])
        groups.setdefault(key, []).append(result)
    fastest_baseline: dict[str, float] = {}
    for (workload, _), run in baseline.items():
        fastest_baseline[workload] = min(run["seconds"],
                                         fastest_baseline.get(workload, math.inf))
    rows = []
    for (workload, framework, variant), runs in groups.items():
        steps = runs[0]["steps"]
        paired = [(r, baseline[(workload, r["round"])]) for r in runs
                  if (workload, r["round"]) in baseline]
        rows.append(Row(
            workload=workload, framework=framework, variant=variant, runs=len(runs),
            steps=steps,
            steps_per_s=statistics.median(steps / r["seconds"] for r in runs),
            overhead_us=_median([(r["seconds"] - b["seconds"]) / steps * 1e6
                                 for r, b in paired]),
            ratio=_median([r["seconds"] / b["seconds"] for r, b in paired]),
            cpu_ratio=_median([r["cpu_seconds"] / b["cpu_seconds"] for r, b in paired]),
            peak_rss_mb=statistics.median(r["peak_rss_mb"] for r in runs),
            best_ratio=(min(r["seconds"] for r in runs) / fastest_baseline[workload]
                        if workload in fastest_baseline else math.nan),
            fit_fixed_ms=_median([r["fit_fixed_ms"] for r in runs if "fit_fixed_ms" in r]),
            val_fixed_ms=_median([r["val_fixed_ms"] for r in runs if "val_fixed_ms" in r])))
    return rows


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass(frozen=True)
class HeadToHead:
    """Two (framework, variant) runs of one workload compared round by round."""

    ratio: float  # median over rounds of first seconds / second seconds
    wins: int  # rounds in which the first was faster
    rounds: int


def head_to_head(results: list[dict], workload: str, first: tuple[str, str],
                 second: tuple[str, str]) -> HeadToHead | None:
    """Pair two contenders by round: closer than a ratio of two medians when they differ by
    less than the machine's drift, since both runs of a round saw the same machine state."""
    def seconds(which: tuple[str, str]) -> dict[int, float]:
        return {r["round"]: r["seconds"] for r in results
                if r["workload"] == workload and (r["framework"], r["variant"]) == which}
    a, b = seconds(first), seconds(second)
    ratios = [a[round_] / b[round_] for round_ in a if round_ in b]
    if not ratios:
        return None
    return HeadToHead(statistics.median(ratios), sum(ratio < 1 for ratio in ratios),
                      len(ratios))
