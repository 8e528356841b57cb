#!/usr/bin/env bash
# Install hookline with every extra into .venv and run the demo (digits CNN, no download).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh all
exec .venv/bin/hookline demo "$@"
