"""The repository stays clean under ruff, and src/ type-checks under mypy.

Both run as subprocesses of this interpreter, so they use the project's pinned tool versions
and the [tool.ruff] / [tool.mypy] settings in pyproject.toml.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    # a cold mypy takes 120-260 s on the 2-core CI machine, more when it is shared: the
    # limit only stops a hang
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=900, check=False)


def _require(module: str) -> None:
    try:
        __import__(module)
    except ImportError:  # a failure, not a skip: the test extra lists both tools
        pytest.fail(f"{module} is not installed; install the test extra: "
                    f"pip install -e '.[test]'")


def test_ruff_reports_no_errors_in_the_repository() -> None:
    _require("ruff")
    result = _run(["ruff", "check", "--no-cache", "src", "tests", "examples", "benchmarks",
                   "scripts"])
    assert result.returncode == 0, f"ruff check failed:\n{result.stdout}{result.stderr}"


def test_mypy_reports_no_errors_in_src(tmp_path: Path) -> None:
    _require("mypy")
    result = _run(["mypy", "--cache-dir", str(tmp_path / "mypy_cache"), "src"])
    assert result.returncode == 0, f"mypy src failed:\n{result.stdout}{result.stderr}"
