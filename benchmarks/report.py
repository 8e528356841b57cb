"""Markdown for the results: the tables printed by run.py and written into BENCHMARKS.md."""

from __future__ import annotations

import math
import re
from pathlib import Path

from stats import HeadToHead, Row, head_to_head, summarise

START, END = "<!-- results:start -->", "<!-- results:end -->"
REFERENCE = "tiny"  # the targets are stated on the tiny MLP


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _num(value: float, digits: int = 1) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def machine_table(machine: dict, config: dict) -> str:
    versions = ", ".join(f"{name} {version}" for name, version in machine["versions"].items())
    rows = [["date", machine["date"]], ["cpu", f"{machine['cpu']} ({machine['cores']} cores)"],
            ["os", machine["os"]], ["load average before / after",
                                    f"{machine['load_before']} / {machine.get('load_after', '?')}"],
            ["versions", versions], ["torch threads", "1"],
            ["repeats per workload", ", ".join(f"{k}: {v}" for k, v in
                                               config["repeats"].items())],
            ["wall time of the whole run", f"{config.get('wall_s', 0):.0f} s"]]
    return _table(["", ""], rows)


KIND_TITLES = {"mlp": "MLP", "cnn": "CNN", "lm": "transformer", "custom": "custom step"}
KIND_LINES = {
    "mlp": "MLP {sizes}, batch {batch_size}, the same DataLoader of pre-cut batches for all "
           "(hookline arrays: given the tensors)",
    "cnn": "CNN (2 conv blocks) on 3x32x32 images, batch {batch_size}, per-sample random "
           "crop and flip in a Dataset, DataLoader(num_workers=2, pin_memory=True, "
           "persistent_workers=True)",
    "lm": "causal transformer (2 layers, width 64, 32 tokens), batch {batch_size}, dict "
          "batches, the model computes its own loss",
    "custom": "MLP {sizes}, batch {batch_size}, a hand-written training step (cross-entropy "
              "+ a logit penalty) in every framework",
}


def workload_title(workload: dict) -> str:
    return f"{workload['name']} ({KIND_TITLES.get(workload.get('kind', 'mlp'), '')})"


def workload_line(workload: dict) -> str:
    kind = workload.get("kind", "mlp")
    sizes = "-".join(map(str, workload.get("sizes", ())))
    steps = workload["steps_per_epoch"] * workload["epochs"]
    what = KIND_LINES[kind].format(sizes=sizes, batch_size=workload["batch_size"])
    return (f"**{workload['name']}**: {what}; {steps} steps + {workload['epochs']} "
            f"validations of {workload['val_batches']} batches")


def runs_table(rows: list[Row]) -> str:
    body = [[r.framework, r.variant, _num(r.steps_per_s, 0), _num(r.overhead_us),
             f"{_num(r.ratio, 2)}x", f"{_num(r.cpu_ratio, 2)}x", f"{_num(r.best_ratio, 2)}x",
             _num(r.peak_rss_mb, 0), _num(r.fit_fixed_ms), _num(r.val_fixed_ms), str(r.runs)]
            for r in rows]
    return _table(["framework", "variant", "steps/s", "overhead µs/step", "× raw bare",
                   "× raw bare (CPU time)", "× raw bare (best runs)", "peak RSS MB",
                   "fit fixed ms", "validation fixed ms", "runs"], body)


def fixed_table(rows: list[Row]) -> str:
    """Fit and validation fixed costs of the bare runs: a framework per row, a workload per
    column pair."""
    bare = [r for r in rows if r.variant == "bare" and not math.isnan(r.fit_fixed_ms)]
    workloads = list(dict.fromkeys(r.workload for r in bare))
    frameworks = list(dict.fromkeys(r.framework for r in bare))
    cell = {(r.framework, r.workload): r for r in bare}
    body = [[name] + [f"{_num(cell[(name, w)].fit_fixed_ms)} / {_num(cell[(name, w)].val_fixed_ms)}"
                      if (name, w) in cell else "n/a" for w in workloads]
            for name in frameworks]
    return _table(["framework"] + [f"{w}: fit / validation ms" for w in workloads], body)


def scale_section(scale: dict) -> str:
    """The callback-scale, run-length and RSS figures of ``scale_bench.py``."""
    listeners = scale["listeners"]
    title = ("#### Listeners on every per-batch event, and 1,000 callbacks that listen to "
             "nothing")
    parts = [title, "",
             _table(["case", "value"], [[k, str(v) if isinstance(v, int) else
                                         _num(v, 3 if "call" in k else 1)]
                                        for k, v in listeners.items()]), "",
             _table(["case", "µs per event"], [[k.rsplit(":", 1)[0], _num(v, 3)]
                                               for k, v in scale["idle_dispatch"].items()])]
    for title, series in scale["run_length"].items():
        parts += ["", f"#### {title}", "",
                  _table(["N" if "N steps" in title else "E", "µs per step"],
                         [[k, _num(v)] for k, v in series.items()])]
    rss = scale["rss"]
    parts += ["", "#### Memory over a long run (read after every epoch)", "",
              _table(["run: memory read", "epochs", "steps", "first epoch MB", "middle epoch MB",
                      "last epoch MB", "max MB", "last - first MB", "last - middle MB"],
                     [[name, str(v["epochs"]), str(v["steps"])] + [
                         _num(v[key], 3) for key in ("first epoch MB", "middle epoch MB",
                                                     "last epoch MB", "max MB",
                                                     "last - first MB", "last - middle MB")]
                      for name, v in rss.items()])]
    return "\n".join(parts)


def import_table(imports: dict[str, dict[str, float]], statements: dict[str, str]) -> str:
    body = [[label, f"`import {statements.get(label, label)}`", _num(v["seconds"], 3),
             _num(v["over_torch"], 3)] for label, v in imports.items()]
    return _table(["framework", "statement", "cold import s", "added over `import torch` s"],
                  body)


def dispatch_table(dispatch: dict[str, float]) -> str:
    return _table(["case", "µs per call"], [[name, _num(us, 3)] for name, us in dispatch.items()])


def checkpoint_table(checkpoint: dict[str, dict[str, float]]) -> str:
    body = [[name, _num(v["model_mb"], 0), _num(v["in_call_ms"]), _num(v["added_per_epoch_ms"]),
             _num(v["final_wait_ms"])] for name, v in checkpoint.items()]
    return _table(["saver", "model MB", "ms inside the save call", "ms added per epoch",
                   "ms waiting for the last write"], body)


def _find(rows: list[Row], framework: str, variant: str) -> Row | None:
    return next((r for r in rows if r.workload == REFERENCE and r.framework == framework
                 and r.variant == variant), None)


ENGINE_WORKLOADS = {"tiny": "batch 32", "tiny-128": "batch 128"}
CALL_BUDGET = 10  # Python calls per training step over the raw loop


def _engine_checks(engine: dict | None) -> list[tuple[str, dict | float | None, float, str]]:
    """The engine-cost targets, judged on ``engine_cost.py``'s in-process alternation."""
    checks: list[tuple[str, dict | float | None, float, str]] = []
    measured = (engine or {}).get("workloads", {})
    # a run from before the durable control has no such contender: its table stays as it was
    durable = any("raw typical, durable" in workload.get("summary", {})
                  for workload in measured.values())
    for name, label in ENGINE_WORKLOADS.items():
        summary = measured.get(name, {}).get("summary", {})
        bare, typical = summary.get("hookline bare", {}), summary.get("hookline typical", {})
        checks += [
            (f"bare ≤ 1.02x the raw loop, {label}", bare.get("vs raw bare"), 1.02, "x"),
            (f"typical ≤ 1.05x the raw loop, {label}", typical.get("vs raw bare"), 1.05, "x"),
            (f"typical ≤ the raw loop doing the same work by hand, {label}",
             typical.get("vs raw typical"), 1.0, "x")]
        if durable:
            checks.append(((f"typical ≤ the raw loop doing the same work by hand, its saves "
                            f"made durable as hookline's are (fsync, rename), {label}"),
                           typical.get("vs raw typical, durable"), 1.0, "x"))
    calls = (engine or {}).get("calls_per_step")
    checks.append((f"Python calls per training step, bare, over the raw loop's "
                   f"({calls['raw']:.1f} calls)" if calls else
                   "Python calls per training step, bare, over the raw loop's",
                   calls["hookline"] - calls["raw"] if calls else None, CALL_BUDGET, "calls"))
    return checks


def targets_table(rows: list[Row], imports: dict, dispatch: dict,
                  versus_naive: HeadToHead | None = None, engine: dict | None = None) -> str:
    """The issue's targets against this run's figures; absent figures say n/a.

    The engine-cost targets come from ``engine_cost.py`` (one process, fit by fit
    alternation, the suite's own builders and DataLoaders): the best-run ratio and the
    median of the rounds' ratios must both be within the limit, and the median's bootstrap
    95% interval is shown. The comparison with the peers is judged on the suite's best runs
    (stats.py says why). ``versus_naive`` adds hookline typical against the naive logging
    loop round by round.
    """
    checks: list[tuple[str, Row | dict | float | None, float, str]] = []
    checks += _engine_checks(engine)
    typical = _find(rows, "hookline", "typical")
    others = [r.best_ratio for r in rows if r.workload == REFERENCE and r.variant == "typical"
              and r.framework not in ("hookline", "raw")]
    if typical and others:
        checks.append((("typical ahead of every peer and the naive logging loop (suite, "
                        "batch 32)"), typical, min(others), "x"))
    if versus_naive is not None:
        name = (f"typical against the naive logging loop, round by round (suite; faster in "
                f"{versus_naive.wins} of {versus_naive.rounds} rounds)")
        checks.append((name, versus_naive.ratio, 1.0, "x"))
    checks.append(("an event nobody listens to: the engine's `if handlers:` guard",
                   dispatch.get("unlisted event, engine guard (if handlers:)"), 0.1, "µs"))
    checks.append(("an event nobody listens to: `fire()`",
                   dispatch.get("fire() with 0 no-op listeners"), 0.1, "µs"))
    checks.append(("10 no-op listeners", dispatch.get("fire() with 10 no-op listeners"),
                   3.0, "µs"))
    bare = _find(rows, "hookline", "bare")
    if bare is not None:
        checks.append(("fixed cost of a fit (build + fit of one step, less the step)",
                       bare.fit_fixed_ms, 10.0, "ms"))
    checks.append(("`import hookline` over `import torch`",
                   imports.get("hookline", {}).get("over_torch"), 0.15, "s"))
    body = []
    for name, measured, limit, unit in checks:
        body.append([name, f"≤ {limit:.3g} {unit}", *_verdict(measured, limit, unit)])
    return _table(["target (tiny MLP)", "limit", "measured", "met"], body)


def _verdict(measured: Row | dict | float | None, limit: float, unit: str) -> list[str]:
    """[the figure as shown, whether it meets ``limit``]."""
    if isinstance(measured, dict):  # an engine_cost ratio: best, median and its interval
        best, median = measured["best"], measured["median"]
        shown = (f"best runs {best:.3f} {unit}; median {median:.3f} {unit} "
                 f"[{measured['low']:.3f}, {measured['high']:.3f}]")
        met = best <= limit and median <= limit
        return [shown, "yes" if met else ("**no**" if best > limit and median > limit
                                          else "**median only**" if median <= limit
                                          else "**best runs only**")]
    value = measured.best_ratio if isinstance(measured, Row) else measured
    if value is None or math.isnan(value):
        return ["n/a", "n/a"]
    shown = f"{value:.3f} {unit}"
    if isinstance(measured, Row):
        shown = (f"best runs {shown}; median {measured.ratio:.3f} {unit} (CPU time "
                 f"{measured.cpu_ratio:.3f} {unit})")
    return [shown, "yes" if value <= limit else "**no**"]


def engine_section(engine: dict) -> str:
    """Every contender of ``engine_cost.py``, per workload."""
    parts = []
    for name, measured in engine.get("workloads", {}).items():
        keys = ["vs raw bare", "vs raw bare (CPU)", "vs raw typical"]
        headers = ["× raw bare", "× raw bare (CPU time)", "× raw typical"]
        if any("vs raw typical, durable" in figures for figures in measured["summary"].values()):
            keys.append("vs raw typical, durable")  # runs before this control lack it
            headers.append("× raw typical, durable")
        body = []
        for contender, figures in measured["summary"].items():
            row = [contender, _num(figures["best_s"]["value"], 4),
                   _num(figures["median_s"]["value"], 4)]
            for key in keys:
                figure = figures.get(key)
                row.append(f"{figure['best']:.3f} / {figure['median']:.3f} "
                           f"[{figure['low']:.3f}, {figure['high']:.3f}]" if figure else "")
            body.append(row)
        parts += [(f"#### {name} (batch {measured['batch_size']}, {measured['steps']} "
                   f"steps), {measured['rounds']} rounds"), "",
                  _table(["contender", "best s", "median s", *headers], body), ""]
    calls = engine.get("calls_per_step")
    if calls:
        parts.append(f"Python calls per training step (cProfile, {calls['workload']}, "
                     f"validation included): raw bare {calls['raw']:.1f}, hookline bare "
                     f"{calls['hookline']:.1f} (+{calls['hookline'] - calls['raw']:.1f}).")
    return "\n".join(parts).rstrip() + "\n"


def results_section(summary: dict) -> str:
    # from the runs when the file has them, so a saved run re-renders with today's figures
    rows = summarise(summary["runs"]) if summary.get("runs") else [
        Row(**row) for row in summary["rows"]]
    parts = ["### Machine", "", machine_table(summary["machine"], summary["config"])]
    if summary.get("dispatch_us") is not None:
        versus_naive = head_to_head(summary.get("runs", []), REFERENCE,
                                    ("hookline", "typical"), ("naive-logging", "typical"))
        parts += ["", "### Targets", "", targets_table(rows, summary["imports"],
                                                       summary["dispatch_us"], versus_naive,
                                                       summary.get("engine"))]
    if summary.get("engine"):
        parts += ["", "### Engine cost: hookline and the raw loop alternating in one process",
                  "", ("Ratios: best runs / median of the rounds [bootstrap 95% interval of "
                       "the median]."), "", engine_section(summary["engine"]).rstrip()]
    for workload in summary["workloads"]:
        chosen = [r for r in rows if r.workload == workload["name"]]
        if chosen:
            parts += ["", f"### {workload_title(workload)}", "", workload_line(workload), "",
                      runs_table(chosen)]
    if any(not math.isnan(r.fit_fixed_ms) for r in rows):
        parts += ["", "### Fixed costs of a fit and of a validation pass (bare runs)", "",
                  fixed_table(rows)]
    parts += ["", "### Cold import", "", import_table(summary["imports"],
                                                      summary["import_statements"])]
    if summary.get("dispatch_us"):
        parts += ["", "### Event dispatch", "", dispatch_table(summary["dispatch_us"])]
    if summary.get("checkpoint"):
        parts += ["", "### Checkpoint stall", "", checkpoint_table(summary["checkpoint"])]
    if summary.get("scale"):
        parts += ["", "### Scale of the callback system and of the run", "",
                  scale_section(summary["scale"])]
    return "\n".join(parts) + "\n"


def write_into(path: Path, section: str) -> None:
    """Replace what lies between the result markers of ``path`` (added at the end if absent)."""
    text = path.read_text() if path.exists() else ""
    block = f"{START}\n{section}{END}"
    if START in text and END in text:
        pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip() + ("\n\n" if text else "") + block + "\n"
    path.write_text(text)
