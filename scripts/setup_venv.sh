#!/usr/bin/env bash
# Create .venv (if missing) and install torch==2.13.0 (CPU) and hookline with every extra.
# Sourced by demo.sh and test.sh; extra pip extras may be given as $1 (e.g. "all,test").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first and pinned: an unpinned resolve would pull a CUDA build of several GB
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[${1:-all}]"
