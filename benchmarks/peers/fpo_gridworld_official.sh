#!/usr/bin/env bash
# The official FPO grid-world code (akanazawa/fpo, gridworld/) beside fluxrl: the step-for-step env check
# (fpo_gridworld_official.py, then fpo_gridworld_official_compare.py), reference trainings of the official FPO and
# PPO (fpo_gridworld_official_train.py), and their measures with fluxrl's grid-world functions
# (fpo_gridworld_official_summary.py, writes benchmarks/results/fpo_gridworld_official.json).
#
# Needs fluxrl's venv (.venv), the official venv (bash benchmarks/peers/setup.sh) and an export of akanazawa/fpo's
# gridworld/ folder (git archive HEAD gridworld | tar -x -C DIR, then FPO_OFFICIAL_DIR=DIR/gridworld).
# Usage: FPO_OFFICIAL_DIR=DIR benchmarks/peers/fpo_gridworld_official.sh [iterations (100)] [seeds... (0 1)]
# Optional: OUT (results folder, default runs/fpo-gridworld-official), FPO_OFFICIAL_COMMIT (recorded in the JSON).
# One 100-iteration training takes about 3 (PPO) or 7 (FPO) CPU-minutes on one core.
set -euo pipefail
OFFICIAL="$(cd "${FPO_OFFICIAL_DIR:?set FPO_OFFICIAL_DIR to an export of gridworld/ of akanazawa/fpo}" && pwd)"
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
FLUXRL_PY=.venv/bin/python
OFFICIAL_PY=benchmarks/.venvs/fpo-official/bin/python
OUT="${OUT:-runs/fpo-gridworld-official}"
ITERS="${1:-100}"
shift $(( $# > 0 ? 1 : 0 ))
SEEDS=("$@")
[ ${#SEEDS[@]} -gt 0 ] || SEEDS=(0 1)
[ -x "$OFFICIAL_PY" ] || { echo "no $OFFICIAL_PY: run bash benchmarks/peers/setup.sh" >&2; exit 1; }
# one thread per training, so CPU times compare across runs; no wandb account, no display
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 WANDB_MODE=disabled MPLBACKEND=Agg
mkdir -p "$OUT"

# The saddle cells and start cell the official policies are sampled at, from fluxrl (only its venv has them).
"$FLUXRL_PY" - "$OUT/saddle_two_walls.json" <<'EOF'
import json, sys
from fluxrl.envs.control.gridworld import start_position
from fluxrl.onpolicy.gridworld_eval import saddle_headings
cells, headings = saddle_headings("two_walls")
with open(sys.argv[1], "w") as f:
    json.dump({"cells": cells.tolist(), "headings": headings.tolist(),
               "start": start_position("two_walls").tolist()}, f)
EOF

"$OFFICIAL_PY" benchmarks/peers/fpo_gridworld_official.py --official "$OFFICIAL" --out "$OUT/env_steps.npz"
"$FLUXRL_PY" benchmarks/peers/fpo_gridworld_official_compare.py --steps "$OUT/env_steps.npz" | tee "$OUT/compare.log"

for method in fpo ppo; do
  for seed in "${SEEDS[@]}"; do
    # niced: the trainings are long and should not slow interactive work
    nice -n 10 "$OFFICIAL_PY" benchmarks/peers/fpo_gridworld_official_train.py --official "$OFFICIAL" \
      --method "$method" --seed "$seed" --iters "$ITERS" --out "$OUT" 2>&1 | tee "$OUT/${method}_seed${seed}.log"
  done
done

"$FLUXRL_PY" benchmarks/peers/fpo_gridworld_official_summary.py "$OUT" \
  ${FPO_OFFICIAL_COMMIT:+--official-commit "$FPO_OFFICIAL_COMMIT"}
