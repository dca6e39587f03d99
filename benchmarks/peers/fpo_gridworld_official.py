"""Record the official FPO grid world (akanazawa/fpo, gridworld/utils/gridworld.py) step for step, layout two_walls.

Plays fixed action sequences through the official, unedited GridWorldEnv and saves, per step, the observation,
cell, reward, terminated and truncated it returns; `fpo_gridworld_official_compare.py` replays the same starts and
actions through fluxrl's GridWorld and compares them.

Sequences (float32 actions, as a policy's numpy output), each run until terminated or truncated (100 steps):
- 200 from the official reset (env.reset(seed=k), k = 0..199) and 200 from the start cell (17, 12), set by assigning
  env.pos and env.steps after a reset (the official env has no start option);
- actions uniform in [-1.6, 1.6]^2 plus a per-sequence drift in [-0.5, 0.5]^2, so goals, the grid's edges and the
  step limit are all reached; with probability 0.25 per component one of EDGES instead, the values where the clip
  and the round (half to even) decide the move.
Also records 20,000 official resets (seed 12345) to compare the start distributions.

Run with the official venv (benchmarks/.venvs/fpo-official, see setup.sh), from the repository root:

    benchmarks/.venvs/fpo-official/bin/python benchmarks/peers/fpo_gridworld_official.py --official DIR

DIR (or env var FPO_OFFICIAL_DIR): an export of akanazawa/fpo's gridworld/ folder (git archive HEAD gridworld).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

EDGES = np.array([0.5, -0.5, 0.4999, -0.4999, 0.5001, -0.5001, 1.5, -1.5, 0.0, 1.0, -1.0], np.float32)
SEQUENCES = 200  # per kind of start
MAX_LEN = 100  # the official env's step limit
RESETS = 20_000


def official_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with --official, the folder of the official grid-world code (or FPO_OFFICIAL_DIR)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--official", default=os.environ.get("FPO_OFFICIAL_DIR"),
                        required="FPO_OFFICIAL_DIR" not in os.environ,
                        help="an export of akanazawa/fpo's gridworld/ folder (git archive HEAD gridworld); "
                             "default: env var FPO_OFFICIAL_DIR")
    return parser


def main():
    """Record the sequences and resets into one npz."""
    parser = official_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/fpo-gridworld-official/env_steps.npz")
    args = parser.parse_args()
    os.environ.setdefault("MPLBACKEND", "Agg")  # the env opens a matplotlib figure when built
    sys.path.insert(0, os.path.abspath(args.official))
    from utils.gridworld import GridWorldEnv

    env = GridWorldEnv(mode="two_walls")
    n = 2 * SEQUENCES
    starts = np.zeros((n, 2), np.int32)
    start_obs = np.zeros((n, 2), np.float32)
    actions = np.zeros((n, MAX_LEN, 2), np.float32)
    obs = np.zeros((n, MAX_LEN, 2), np.float32)
    pos = np.zeros((n, MAX_LEN, 2), np.int32)
    rew = np.zeros((n, MAX_LEN), np.float64)
    term = np.zeros((n, MAX_LEN), bool)
    trunc = np.zeros((n, MAX_LEN), bool)
    length = np.zeros(n, np.int32)
    from_reset = np.arange(n) < SEQUENCES
    for i in range(n):
        o, _ = env.reset(seed=i % SEQUENCES)
        if not from_reset[i]:
            env.pos = np.array([17, 12], int)
            env.steps = 0
            o = env._get_obs()
        starts[i] = env.pos
        start_obs[i] = o
        rng = np.random.default_rng(1000 + i)
        drift = rng.uniform(-0.5, 0.5, 2)
        seq = rng.uniform(-1.6, 1.6, (MAX_LEN, 2)) + drift
        edge = rng.random((MAX_LEN, 2)) < 0.25
        seq = np.where(edge, rng.choice(EDGES, (MAX_LEN, 2)), seq).astype(np.float32)
        actions[i] = seq
        for t in range(MAX_LEN):
            o, r, te, tr, _ = env.step(seq[t])
            obs[i, t], pos[i, t], rew[i, t], term[i, t], trunc[i, t] = o, env.pos, r, te, tr
            if te or tr:
                length[i] = t + 1
                break
    env.reset(seed=12345)
    reset_cells = np.zeros((RESETS, 2), np.int32)
    for j in range(RESETS):
        env.reset()
        reset_cells[j] = env.pos
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    np.savez(args.out, starts=starts, start_obs=start_obs, actions=actions, obs=obs, pos=pos, rew=rew, term=term,
             trunc=trunc, length=length, from_reset=from_reset, reset_cells=reset_cells)
    print(f"{n} sequences, {length.sum()} steps; terminated {int(term.any(1).sum())}, truncated "
          f"{int(trunc.any(1).sum())}, both on one step {int((term & trunc).sum())}; wrote {args.out}")


if __name__ == "__main__":
    main()
