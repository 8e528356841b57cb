"""How the suite shares the machine when pytest-xdist runs it on several workers (``-n 2``).

- Threads: each worker, and every process it starts, gets its share of the cores for torch's
  intra-op threads (``OMP_NUM_THREADS``/``MKL_NUM_THREADS``). Two workers on two cores each
  running two OpenMP threads oversubscribe the machine, and the spinning threads then cost far
  more than they bring: ``hookline demo`` took 76 s of CPU that way against 14 s with one
  thread. Variables already set are kept; without xdist nothing changes.
- Threads left behind: a test fails when a hookline sender thread (a logger's or notifier's
  network calls) is still running 10 s after it. Such a thread goes on calling a server the
  test has stopped, and its retries draw from Python's global ``random`` in the middle of a
  later test's seeded run, which then fails at random (a resume's weights differing).
- Scheduling (``-n N``, whose default ``--dist load`` this replaces): tests are handed out one
  work unit at a time, the longest known first (``COST_S``), so that no long test starts near
  the end while the other worker idles. A module that defines a module-scoped fixture (a
  trained model, a server, a docs build) is one unit, so the fixture is built once, on one
  worker, not once per worker that happens to get one of its tests.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import time
from pathlib import Path

import pytest

_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
if _WORKERS > 1:
    _threads = str(max(1, (os.cpu_count() or 1) // _WORKERS))
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, _threads)

ROOT = Path(__file__).resolve().parents[1]
# Seconds of the longest units with `-n 2` on the 2-core CI machine (`--durations=40` shows
# them): a test id, or a prefix of test ids. Units not named count 0 and keep pytest's order.
COST_S = {
    "tests/test_docs.py::test_every_code_block_runs_as_pasted_or_is_marked[README.md]": 210,
    "tests/test_static_checks.py::test_mypy": 25,
    "tests/test_benchmarks_smoke.py::test_smoke_run": 100,
    "tests/test_distributed.py::test_ranks_resume_together": 75,
    "tests/test_mlflow_wandb.py": 70,
    "tests/test_world_size_change.py": 60,
    "tests/test_docs.py::test_every_code_block_runs_as_pasted_or_is_marked[integrations.md]": 45,
    "tests/test_benchmarks_smoke.py::test_cuda_check_dry_run": 40,
    "tests/test_kill_resume.py": 40,
    "tests/test_docs.py::test_every_code_block_runs_as_pasted_or_is_marked[cli.md]": 35,
    "tests/test_docs.py::test_every_code_block_runs_as_pasted_or_is_marked[callbacks.md]": 35,
    "tests/test_examples.py": 35,
    "tests/test_docs_site.py": 30,
    "tests/test_cli.py::test_a_model_file_in_the_current_folder": 30,
    "tests/test_detection.py": 25,
    "tests/test_porting_guides.py::test_every_python_block": 20,
    "tests/test_distributed.py::test_": 15,
    "tests/test_docs.py::test_every_code_block_runs_as_pasted_or_is_marked[": 15,
    "tests/test_cli.py::test_user_errors": 15,
    "tests/test_demo.py": 15,
    "tests/test_benchmarks_smoke.py::test_cuda_check_without_a_gpu": 15,
    "tests/test_loss_parts_logging.py": 10,
    "tests/test_compile.py::test_compile_true": 10,
}
_MODULE_FIXTURE = re.compile(r"@pytest\.fixture\(scope=[\"']module[\"']")


@functools.cache
def _shares_a_module_fixture(module: str) -> bool:
    path = ROOT / module
    return path.suffix == ".py" and path.is_file() and bool(
        _MODULE_FIXTURE.search(path.read_text()))


def work_unit(nodeid: str) -> str:
    """The module for a module with a module-scoped fixture, else the test itself."""
    module = nodeid.split("::")[0]
    return module if _shares_a_module_fixture(module) else nodeid


def cost(unit: str) -> int:
    return max((seconds for prefix, seconds in COST_S.items() if unit.startswith(prefix)),
               default=0)


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # before xdist's own; none without it
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    if config.getvalue("dist") != "load":
        return None
    # LoadScopeScheduling's workqueue, assigned_work and registered_collections are xdist's
    # internals (read in 3.8.0): pyproject.toml keeps pytest-xdist below 3.9 for that reason
    from xdist.scheduler import LoadScopeScheduling

    class LongestFirst(LoadScopeScheduling):
        """LoadScopeScheduling with our work units, each node given the longest one left."""

        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

        def _assign_work_unit(self, node: object) -> None:
            scope = max(self.workqueue, key=cost)  # the first of the longest
            work = self.workqueue.pop(scope)
            self.assigned_work.setdefault(node, {})[scope] = work
            collection = self.registered_collections[node]
            node.send_runtest_some([collection.index(nodeid)
                                    for nodeid, done in work.items() if not done])

    return LongestFirst(config, log)


@pytest.fixture(autouse=True)
def _no_sender_thread_outlives_its_test():
    yield
    deadline = time.monotonic() + 10
    for thread in threading.enumerate():
        if thread.name.startswith("hookline-") and thread.name.endswith("-sender"):
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
    left = [thread.name for thread in threading.enumerate()
            if thread.name.startswith("hookline-") and thread.name.endswith("-sender")
            and thread.is_alive()]
    assert not left, f"sender thread(s) still running 10 s after the test: {left}"
