#!/usr/bin/env bash
# Create isolated virtual environments for the peer libraries benchmarked against fluxrl.
# Idempotent: a venv whose pinned imports already work is left alone.
#   benchmarks/.venvs/gfnx      gfnx==0.0.1 (needs jax 0.5.3: it calls jax.tree_map), plus the
#                               equinox/optax its baselines use (pinned to versions that work with jax 0.5.3)
#   benchmarks/.venvs/torchgfn  torchgfn==2.4.1 on torch==2.13.0 (CPU wheel on local disk; install first)
#   benchmarks/.venvs/d3rlpy    d3rlpy==2.8.1 on torch==2.13.0
#   benchmarks/.venvs/rejax     rejax==0.1.3 with gymnax==0.0.9 (the 5-value step it unpacks) on jax==0.10.2
#   benchmarks/.venvs/fpo-official  what the official FPO grid-world code imports (torch==2.2.2), Python 3.11
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENVS="$ROOT/benchmarks/.venvs"
PY="${PYTHON:-python3}"
mkdir -p "$VENVS"

ensure_venv() {  # name, check-code, pip-arg-groups...
  local name="$1" check="$2"; shift 2
  local venv="$VENVS/$name"
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" >/dev/null 2>&1; then
    echo "[setup] $name: ok ($venv)"; return
  fi
  echo "[setup] $name: creating $venv"
  [ -x "$venv/bin/python" ] || "$PY" -m venv "$venv"
  for group in "$@"; do
    # shellcheck disable=SC2086
    "$venv/bin/python" -m pip install -q $group 2>&1 | { grep -v "is ignored: it is neither" || true; }
  done
  "$venv/bin/python" -c "$check"
  echo "[setup] $name: ready"
}

ensure_venv gfnx \
  "import jax, gfnx, equinox, optax, orbax.checkpoint; assert jax.__version__ == '0.5.3'" \
  "jax==0.5.3 jaxlib==0.5.3 orbax-checkpoint==0.11.13 equinox==0.13.8 optax==0.2.8 numpy gfnx==0.0.1"

ensure_venv torchgfn \
  "import torch, gfn, numpy; assert torch.__version__.startswith('2.13.0')" \
  "torch==2.13.0 numpy" \
  "torchgfn==2.4.1 torch==2.13.0"

ensure_venv d3rlpy \
  "import torch, d3rlpy; assert torch.__version__.startswith('2.13.0') and d3rlpy.__version__ == '2.8.1'" \
  "torch==2.13.0 numpy" \
  "d3rlpy==2.8.1 torch==2.13.0"

# rejax 0.1.3 unpacks gymnax's step into 5 values; gymnax 1.x returns 6, so its last 5-value release, 0.0.9.
# jax as fluxrl's, so both sides of benchmarks/onpolicy_ppo.py run the same XLA.
ensure_venv rejax \
  "import jax, rejax, gymnax; from importlib.metadata import version; assert jax.__version__ == '0.10.2' and version('rejax') == '0.1.3' and version('gymnax') == '0.0.9'" \
  "jax==0.10.2 jaxlib==0.10.2 rejax==0.1.3 gymnax==0.0.9"

# The official FPO grid-world code (akanazawa/fpo gridworld/, run by fpo_gridworld_official*.py): the packages it
# imports, as its requirements.txt pins them (numpy 1.26.4 there, here any numpy 1; wandb unpinned there too); the
# rest of that file (torchvision, torchaudio, pygame, ipdb, torchdiffeq) is not imported by the code these scripts
# run. torch's CPU wheel index is unreachable here, so PyPI's torch 2.2.2 (the CUDA build) is installed; it runs on
# the CPU.
PY=python3.11 ensure_venv fpo-official \
  "import torch, numpy, gymnasium, matplotlib, wandb; assert torch.__version__.startswith('2.2.2') and numpy.__version__.startswith('1.') and gymnasium.__version__ == '0.29.1' and matplotlib.__version__ == '3.9.2'" \
  "torch==2.2.2 numpy<2 gymnasium==0.29.1 matplotlib==3.9.2 wandb"
