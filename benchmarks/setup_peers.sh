#!/usr/bin/env bash
# Create benchmarks/.venv-peers with the peer frameworks, all on torch==2.13.0,
# plus hookline itself (editable). Safe to re-run; works from any cwd.
set -euo pipefail

bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$bench_dir/.." && pwd)"
venv="$bench_dir/.venv-peers"
constraints="$bench_dir/constraints-peers.txt"
python_bin="${PYTHON:-python3.11}"
command -v "$python_bin" >/dev/null || python_bin=python3

if [ ! -x "$venv/bin/python" ]; then
    "$python_bin" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
# The extra local indexes configured on some machines make pip warn once per package.
quiet_pip() { "${pip[@]}" "$@" 2> >(grep -v "is ignored: it is neither a file" >&2); }

# torch first, alone, so the peers find it already satisfied.
quiet_pip install --quiet -c "$constraints" "torch==2.13.0"
quiet_pip install --quiet -c "$constraints" \
    numpy pytorch-lightning keras pytorch-ignite

# Re-installed every time, so a dependency hookline gained since is picked up.
if [ -f "$repo_root/pyproject.toml" ]; then
    # The build backend is chatty; show its output only when the install fails.
    log="$(mktemp)"
    if ! "${pip[@]}" install --quiet -c "$constraints" -e "$repo_root" >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
else
    echo "setup_peers: no $repo_root/pyproject.toml yet; hookline is used from src/ instead" >&2
fi

# Fail loudly if anything replaced the pinned torch or dragged CUDA wheels in.
"$venv/bin/python" - <<'PY'
import importlib.metadata as md
import sys

torch_version = md.version("torch")
cuda = sorted(d.metadata["Name"] for d in md.distributions()
              if d.metadata["Name"].lower().startswith(("nvidia-", "triton")))
if not torch_version.startswith("2.13.0") or cuda:
    sys.exit(f"setup_peers: wrong torch {torch_version!r} or CUDA packages {cuda}; "
             "check benchmarks/constraints-peers.txt")
names = ["torch", "pytorch-lightning", "keras", "pytorch-ignite"]
print("setup_peers: ok,", ", ".join(f"{n}=={md.version(n)}" for n in names))
PY
