#!/usr/bin/env bash
# Install hookline with every extra into .venv and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh all,test
exec .venv/bin/python -m pytest -q "$@"
