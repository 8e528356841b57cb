#!/usr/bin/env bash
# The one command: install the peers into benchmarks/.venv-peers, then run the whole suite
# with that venv and regenerate the results section of BENCHMARKS.md. Extra arguments go to
# run.py (e.g. --repeats 3, --repeats tiny=7,cnn=2, --workloads tiny,cnn).
set -euo pipefail
bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$bench_dir/setup_peers.sh"
exec "$bench_dir/.venv-peers/bin/python" "$bench_dir/run.py" "$@"
