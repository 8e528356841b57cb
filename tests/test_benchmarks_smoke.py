"""The benchmark suite's smoke run: a few steps of hookline and the raw loop, end to end.

Timings are not checked against any target (CI machines are noisy); only that the suite runs
and reports a finite, positive figure in every expected row.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
EXPECTED_RUNS = {("raw", "bare"), ("raw", "typical"), ("hookline", "bare"),
                 ("hookline", "typical"), ("hookline", "custom-step"),
                 ("hookline", "dict-batch")}


def _table_rows(text: str) -> dict[tuple[str, str], list[str]]:
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 9 and (cells[0], cells[1]) in EXPECTED_RUNS:
            rows[(cells[0], cells[1])] = cells
    return rows


def _number(cell: str) -> float:
    return float(cell.rstrip("x").replace(",", ""))


def test_smoke_run_reports_every_expected_row(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "run.py"), "--smoke",
                           "--json", str(out)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-3000:]

    rows = _table_rows(done.stdout)
    assert set(rows) == EXPECTED_RUNS, done.stdout
    for key, cells in rows.items():
        steps_per_s, overhead, ratio, cpu_ratio, best, rss = (_number(c) for c in cells[2:8])
        assert steps_per_s > 0 and ratio > 0 and cpu_ratio > 0 and best > 0 and rss > 0, (
            key, cells)
        assert math.isfinite(overhead), (key, cells)

    summary = json.loads(out.read_text())
    assert {(r["framework"], r["variant"]) for r in summary["rows"]} == EXPECTED_RUNS
    for row in summary["rows"]:
        assert row["steps"] > 0, row
        assert all(math.isfinite(row[k]) and row[k] > 0
                   for k in ("steps_per_s", "ratio", "cpu_ratio", "best_ratio",
                             "peak_rss_mb")), row
    hookline_import = summary["imports"]["hookline"]["seconds"]
    assert math.isfinite(hookline_import) and hookline_import > 0
    dispatch = summary["dispatch_us"]
    assert len(dispatch) == 4 and all(math.isfinite(v) and v > 0 for v in dispatch.values())


def test_head_to_head_pairs_the_runs_of_each_round(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import stats

    def run(framework: str, round_: int, seconds: float, workload: str = "tiny") -> dict:
        return {"workload": workload, "framework": framework, "variant": "typical",
                "round": round_, "seconds": seconds}
    results = [run("a", 0, 1.0), run("a", 1, 2.0), run("a", 2, 1.5), run("a", 3, 9.0),
               run("b", 0, 1.1), run("b", 1, 1.9), run("b", 2, 1.6),
               run("b", 3, 0.1, workload="medium")]  # round 3 has no pair on tiny
    versus = stats.head_to_head(results, "tiny", ("a", "typical"), ("b", "typical"))
    assert (versus.wins, versus.rounds) == (2, 3)
    assert math.isclose(versus.ratio, 1.5 / 1.6)  # the median of 1/1.1, 2/1.9 and 1.5/1.6
    assert stats.head_to_head(results, "tiny", ("a", "typical"), ("c", "typical")) is None


def test_best_runs_ratio_is_unmoved_by_interference_the_median_takes(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import stats

    def run(framework: str, round_: int, seconds: float) -> dict:
        return {"workload": "tiny", "framework": framework, "variant": "bare", "round": round_,
                "seconds": seconds, "cpu_seconds": seconds, "steps": 10, "peak_rss_mb": 1.0}
    # "engine" costs 0.9 of the raw loop, but 2 of its 3 runs were slowed by other work
    results = [run("raw", 0, 1.0), run("raw", 1, 1.1), run("raw", 2, 1.0),
               run("engine", 0, 1.5), run("engine", 1, 0.9), run("engine", 2, 1.4)]
    rows = {row.framework: row for row in stats.summarise(results)}
    assert math.isclose(rows["engine"].best_ratio, 0.9)  # 0.9 / 1.0: the fastest of each
    assert math.isclose(rows["engine"].ratio, 1.4)  # the median of 1.5, 0.9 / 1.1 and 1.4
    assert rows["raw"].best_ratio == 1.0


def test_a_saved_run_renders_again_without_measuring(tmp_path: Path) -> None:
    results = [{"workload": "tiny", "framework": framework, "variant": "bare", "round": 0,
                "seconds": seconds, "cpu_seconds": seconds, "steps": 10, "peak_rss_mb": 1.0}
               for framework, seconds in (("raw", 2.0), ("hookline", 1.5))]
    saved = tmp_path / "run.json"
    saved.write_text(json.dumps({
        "machine": {"date": "d", "cpu": "c", "cores": 2, "os": "o", "load_before": "0",
                    "versions": {}},
        "config": {"repeats": {"tiny": 1}}, "workloads": [], "rows": [], "imports": {},
        "import_statements": {}, "dispatch_us": None, "checkpoint": None, "runs": results}))
    markdown = tmp_path / "BENCH.md"
    markdown.write_text("# title\n<!-- results:start -->\nstale\n<!-- results:end -->\n")
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "run.py"), "--render",
                           str(saved), "--markdown", str(markdown)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    text = markdown.read_text()
    assert text.startswith("# title\n") and "stale" not in text and "| date | d |" in text


def test_cuda_check_dry_run_prints_its_table() -> None:
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "cuda_check.py"),
                           "--device", "cpu", "--steps", "4", "--epochs", "2", "--repeats", "1"],
                          capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    for precision in ("32", "bf16"):
        for run in ("raw", "hookline bare", "hookline typical"):
            assert f"| {precision} | {run} |" in done.stdout, done.stdout


def _simulated_sync_errors(monkeypatch, cuda_check) -> None:
    """What set_sync_debug_mode("error") does on a GPU, played on CPU: reading a tensor's
    value on the host raises while the mode is on."""
    mode = {"now": "default"}
    monkeypatch.setattr(cuda_check.torch.cuda, "set_sync_debug_mode",
                        lambda value: mode.update(now=value))
    for name in ("item", "tolist", "__float__", "__int__", "__bool__"):
        original = getattr(torch.Tensor, name)

        def guarded(self, *args, _original=original, **kwargs):
            if mode["now"] == "error":
                raise RuntimeError("called a synchronizing CUDA operation")
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, guarded)


@pytest.mark.parametrize("typical", [False, True])
def test_the_sync_window_covers_every_step_and_no_epoch_end(monkeypatch, tmp_path,
                                                            typical) -> None:
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import cuda_check
    _simulated_sync_errors(monkeypatch, cuda_check)
    x, y, x_val, y_val = cuda_check.make_data(cuda_check.MEDIUM)
    data = (x[:4 * 128], y[:4 * 128], x_val, y_val)
    fit, guard, _ = cuda_check.hookline_fit(torch.device("cpu"), "32", data, 4, 3, typical,
                                            tmp_path)
    guard.cuda = True  # the window opens and closes as on a GPU
    assert fit() == 12 and guard.windows == 3  # the epoch ends read values: outside


def test_a_value_read_in_a_step_fails_the_sync_check(monkeypatch, tmp_path) -> None:
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import cuda_check
    _simulated_sync_errors(monkeypatch, cuda_check)
    x, y, x_val, y_val = cuda_check.make_data(cuda_check.MEDIUM)
    fit, guard, trainer = cuda_check.hookline_fit(torch.device("cpu"), "32",
                                                  (x[:512], y[:512], x_val, y_val), 4, 2, False,
                                                  tmp_path)
    guard.cuda = True
    trainer.add_callback("on_train_batch_end", lambda t: t.loss.item())
    with pytest.raises(RuntimeError, match="synchronizing"):
        fit()
