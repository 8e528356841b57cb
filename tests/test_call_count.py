"""The engine's own cost per batch, counted rather than timed: cProfile's call count of a fit.

hookline bare (the default callbacks, ``verbose=0``) and a hand-written loop train the
benchmark's tiny MLP from the same DataLoader of pre-cut batches (``benchmarks/engine_cost.py``,
the suite's own builders); what hookline adds per step is its events, its step and its
bookkeeping. A count is deterministic where a timing on a shared machine is not, and each
Python call costs the loop time, so the budget is in calls.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "engine_cost.py"
BUDGET = 10  # Python calls per training step over the raw loop (issue 16)


def _engine_cost():
    spec = importlib.util.spec_from_file_location("engine_cost", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hookline_bare_adds_at_most_ten_python_calls_a_step_to_the_raw_loop(
        tmp_path: Path) -> None:
    engine_cost = _engine_cost()
    # two epochs of 250 steps with a validation each: the per-epoch work is spread as in a run
    raw = engine_cost.calls_per_step("raw bare", "tiny", 2, tmp_path)
    ours = engine_cost.calls_per_step("hookline bare", "tiny", 2, tmp_path)
    assert raw > 100  # the count is of real training steps (forward, backward, SGD)
    assert ours <= raw + BUDGET, (
        f"hookline bare makes {ours:.1f} Python calls per training step, the raw loop "
        f"{raw:.1f}: {ours - raw:.1f} more, over the budget of {BUDGET}; profile the loop "
        f"(python benchmarks/engine_cost.py --profile-only) and take the new calls out of "
        f"the per-batch path")
