#!/usr/bin/env bash
# Install hookline with every extra into .venv and run the test suite, two tests at a time
# (pytest-xdist: many tests wait on subprocesses, torchrun ranks and servers; tests/conftest.py
# gives each worker one torch thread and hands out the longest tests first). Arguments go to
# pytest; "-n 0" runs one test at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh all,test
exec .venv/bin/python -m pytest -q -n 2 "$@"
