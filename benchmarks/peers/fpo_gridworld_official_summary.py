"""Measure the official FPO / PPO grid-world runs with fluxrl's grid-world measures; write a JSON and a table.

Reads the outputs of fpo_gridworld_official.sh in DIR: each METHOD_seedSEED.npz of fpo_gridworld_official_train.py
(raw actions [25 saddle cells, 1,000, 2], rollouts from (17, 12)) and env_steps.npz of fpo_gridworld_official.py.
The official actions are measured with fluxrl's own functions (fluxrl/onpolicy/gridworld_eval.py, whose docstring
defines each measure), as fluxrl's evaluation measures its own policies; both official policies act in raw action
space and the env clips, as fluxrl's grid-world config (squash "none"):
- saddle_two_modes, start_dip, start_two_modes: `two_goal_modes` on the raw actions (their shape: two modes heading
  to different goals);
- saddle_split, saddle_bimodal, start_split, start_shares (bottom, top), saddle_move_modes: from `heading_shares` of
  the actions' grid moves;
- goals_reached and rollout_goals: the goal regions the 64 rollouts from (17, 12) ended in;
- final_return: the mean episode return of the last training iteration; wall and CPU seconds of training.
Per-method means are over seeds. The env check is `fpo_gridworld_official_compare.env_check` on env_steps.npz.

Run with fluxrl's venv, from the repository root:

    .venv/bin/python benchmarks/peers/fpo_gridworld_official_summary.py runs/fpo-gridworld-official
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re

import jax.numpy as jnp
import numpy as np

from fluxrl.envs.control import gridworld
from fluxrl.onpolicy import gridworld_eval
from fluxrl.onpolicy.tuned import tuned_config
from fpo_gridworld_official_compare import env_check  # this script's folder is on sys.path

LAYOUT = "two_walls"
SETTINGS = ("iterations", "samples_per_cell", "rollouts", "threads", "torch")  # the same in every run
COLUMNS = [  # (JSON key, table header, format)
    ("final_return", "final return", "{:.2f}"),
    ("rollout_goals", "rollouts bottom/top/none", None),
    ("goals_reached", "goals reached", "{:.1f}"),
    ("start_shares", "start shares (bottom, top)", None),
    ("start_dip", "start_dip", "{:.2f}"),
    ("start_two_modes", "start_two_modes", "{:.1f}"),
    ("saddle_split", "saddle_split", "{:.3f}"),
    ("saddle_move_modes", "saddle_move_modes", "{:.2f}"),
    ("saddle_two_modes", "saddle_two_modes", "{:.2f}"),
    ("wall_seconds", "wall s", "{:.0f}"),
    ("cpu_seconds", "CPU s", "{:.0f}"),
]


def measure(path: str, config, cells: np.ndarray, headings: jnp.ndarray, params) -> dict:
    """fluxrl's grid-world measures of one run's saved actions and rollouts, with its training figures."""
    d = np.load(path)
    assert np.array_equal(d["cells"], cells), f"{path}: saddle cells differ from saddle_headings('{LAYOUT}')"
    assert np.array_equal(d["start_cell"], gridworld.start_position(LAYOUT)), f"{path}: another start cell"
    start = int(np.flatnonzero((cells == d["start_cell"]).all(1))[0])
    actions = jnp.asarray(d["actions"])
    dips, two_modes = gridworld_eval.two_goal_modes(config, headings, actions)
    shares = gridworld_eval.heading_shares(headings, gridworld_eval.move_index(actions))
    smaller = jnp.min(shares, axis=1)
    outcome = np.asarray(gridworld.goal_index(params, jnp.asarray(d["rollout_final_cell"])))
    assert np.array_equal(outcome, d["rollout_goal"]), f"{path}: rollout goals differ from fluxrl's goal labels"
    return {
        "iterations": int(d["iterations"]),
        "samples_per_cell": int(d["actions"].shape[1]),
        "rollouts": int(len(d["rollout_goal"])),
        "env_steps": int(d["timesteps"]),
        "final_return": round(float(d["final_return"]), 3),
        "final_episode_length": round(float(d["final_length"]), 2),
        "wall_seconds": round(float(d["wall_time"]), 1),
        "cpu_seconds": round(float(d["cpu_time"]), 1),
        "saddle_two_modes": round(float(jnp.mean(two_modes)), 4),
        "start_dip": round(float(dips[start]), 4),
        "start_two_modes": float(two_modes[start]),
        "saddle_move_modes": round(float(jnp.mean(gridworld_eval.move_modes(shares))), 4),
        "saddle_split": round(float(jnp.mean(smaller)), 4),
        "saddle_bimodal": round(float(jnp.mean(smaller >= gridworld_eval.BIMODAL_SHARE)), 4),
        "start_split": round(float(smaller[start]), 4),
        "start_shares": [round(float(s), 4) for s in shares[start]],
        "goals_reached": int(gridworld.goals_reached(params, jnp.asarray(d["rollout_final_cell"]))),
        "rollout_goals": [int((outcome == 0).sum()), int((outcome == 1).sum()), int((outcome == -1).sum())],
        "torch": str(d["torch_version"]),
        "threads": int(d["threads"]),
    }


def mean_over_seeds(runs: list[dict]) -> dict:
    """Mean of each numeric field (elementwise for lists) over one method's runs."""
    mean = {"seeds": [r["seed"] for r in runs]}
    for key, value in runs[0].items():
        if key == "seed":
            continue
        if isinstance(value, (int, float)):
            mean[key] = round(float(np.mean([r[key] for r in runs])), 4)
        elif isinstance(value, list):
            mean[key] = np.round(np.mean([r[key] for r in runs], axis=0), 4).tolist()
    return mean


def cell(row: dict, key: str, fmt: str | None) -> str:
    """One table cell."""
    value = row[key]
    if key == "rollout_goals":
        return "/".join(f"{v:g}" for v in value)
    if key == "start_shares":
        return f"{value[0]:.3f}, {value[1]:.3f}"
    return fmt.format(value)


def main():
    """Measure every run in DIR, write the JSON, print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", nargs="?", default="runs/fpo-gridworld-official",
                        help="the results folder of fpo_gridworld_official.sh")
    parser.add_argument("--json", default="benchmarks/results/fpo_gridworld_official.json")
    parser.add_argument("--official-commit", default=None, help="the akanazawa/fpo commit the runs used, recorded")
    args = parser.parse_args()
    # two_goal_modes reads only the config's squash: "none" (raw actions, the env clips), as for both official policies
    config = tuned_config("fpo", "gridworld-two-walls")
    cells, headings = gridworld_eval.saddle_headings(LAYOUT)
    params = gridworld.GridWorld(LAYOUT).default_params()
    runs = {}
    for path in sorted(glob.glob(os.path.join(args.dir, "*_seed*.npz"))):
        name = os.path.basename(path)[:-len(".npz")]
        method, seed = re.fullmatch(r"(\w+)_seed(\d+)", name).groups()
        runs[name] = {"method": method, "seed": int(seed),
                      **measure(path, config, cells, jnp.asarray(headings), params)}
    if not runs:
        raise SystemExit(f"no METHOD_seedSEED.npz in {args.dir}")
    settings = {key: next(iter(runs.values()))[key] for key in SETTINGS}
    for name, run in runs.items():
        assert all(run.pop(key) == value for key, value in settings.items()), f"{name}: other settings"
    means = {}
    for method in sorted({r["method"] for r in runs.values()}):
        means[method] = mean_over_seeds([r for r in runs.values() if r["method"] == method])
    steps = os.path.join(args.dir, "env_steps.npz")
    summary = {
        "official": {"repository": "akanazawa/fpo", "folder": "gridworld", "commit": args.official_commit},
        "layout": LAYOUT,
        "saddle_cells": len(cells),
        "start_cell": gridworld.start_position(LAYOUT).tolist(),
        **settings,
        "env_check": env_check(steps) if os.path.exists(steps) else None,
        "means": means,
        "runs": runs,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")

    print("| run | " + " | ".join(header for _, header, _ in COLUMNS) + " |")
    print("|" + " --- |" * (len(COLUMNS) + 1))
    for name, row in runs.items():
        print(f"| {name} | " + " | ".join(cell(row, key, fmt) for key, _, fmt in COLUMNS) + " |")
    for method, row in means.items():
        print(f"| **{method} mean of {len(row['seeds'])}** | "
              + " | ".join(cell(row, key, fmt) for key, _, fmt in COLUMNS) + " |")
    check = summary["env_check"]
    if check:
        print(f"\nenv check: {check['steps_compared']} steps compared; mismatches: "
              + ", ".join(f"{k} {v}" for k, v in check["mismatches"].items()))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
