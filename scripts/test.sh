#!/usr/bin/env bash
# Install hookline with every extra into .venv and run the test suite, two tests at a time
# (pytest-xdist: on the 2-core CI machine 9:49 against 12:05 one at a time, since many tests
# wait on subprocesses, torchrun ranks and servers). Arguments go to pytest; "-n 0" runs one
# test at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh all,test
exec .venv/bin/python -m pytest -q -n 2 "$@"
