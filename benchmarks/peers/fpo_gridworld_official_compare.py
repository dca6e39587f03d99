"""Replay the official grid world's recorded steps (fpo_gridworld_official.py) through fluxrl's GridWorld.

Every sequence starts where the official one did (`gridworld.start_at`, then `GridWorld.reset`) and gets the same
float32 actions (both envs clip and round them); each step's final_observation, cell, reward, terminated and
truncated are compared with the official ones up to the official episode's end. fluxrl's truncated is false on a
terminating step (a documented difference, fluxrl/envs/control/gridworld.py), so truncated is compared both raw and
against the official `truncated and not terminated`. The official resets are compared with fluxrl's start
distribution (support, and a chi-square against uniform).

Run with fluxrl's venv, from the repository root:

    .venv/bin/python benchmarks/peers/fpo_gridworld_official_compare.py \
        --steps runs/fpo-gridworld-official/env_steps.npz
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from fluxrl.envs.control import gridworld

FIELDS = {  # JSON key: printed name
    "observation_bit_equal": "observation (bit-equal)",
    "observation_within_1_ulp": "observation (within 1 float32 ulp)",
    "position": "position",
    "reward": "reward",
    "terminated": "terminated",
    "truncated_raw": "truncated (raw)",
    "truncated_vs_official_truncated_and_not_terminated": "truncated (official trunc and not term)",
}


def replay(d):
    """fluxrl's (start observations, start cells, per-step (obs, reward, terminated, truncated, cell)) as numpy."""
    env = gridworld.GridWorld("two_walls")
    base = env.default_params()

    def one(start, actions, key):
        """One sequence from `start`, all its actions (steps past the official end are ignored later)."""
        params = gridworld.start_at(base, start)
        reset_key, key = jax.random.split(key)
        obs0, state = env.reset(reset_key, params)

        def step(state, inputs):
            """One env step; the final observation is the one the step reached, before any automatic reset."""
            action, k = inputs
            out = env.step(k, state, action, params)
            return out.state, (out.final_observation, out.reward, out.terminated, out.truncated,
                               gridworld.observation_position(out.final_observation))

        _, outs = jax.lax.scan(step, state, (actions, jax.random.split(key, actions.shape[0])))
        return obs0, state.position, outs

    keys = jax.random.split(jax.random.PRNGKey(0), len(d["starts"]))
    out = jax.jit(jax.vmap(one))(jnp.asarray(d["starts"]), jnp.asarray(d["actions"]), keys)
    return jax.tree_util.tree_map(np.asarray, out)


def env_check(path: str, verbose: bool = False) -> dict:
    """Counts of the step-for-step and start-distribution comparison of the recording at `path`."""
    d = dict(np.load(path))
    obs0, pos0, (obs, rew, term, trunc, pos) = replay(d)
    steps = np.arange(d["obs"].shape[1])[None, :] < d["length"][:, None]  # [sequence, step] within the episode
    ulp = np.spacing(np.abs(d["obs"]).astype(np.float32))
    equal = {
        "observation_bit_equal": (obs == d["obs"]).all(-1),
        "observation_within_1_ulp": (np.abs(obs - d["obs"]) <= ulp).all(-1),
        "position": (pos == d["pos"]).all(-1),
        "reward": rew.astype(np.float64) == d["rew"],
        "terminated": term == d["term"],
        "truncated_raw": trunc == d["trunc"],
        "truncated_vs_official_truncated_and_not_terminated": trunc == (d["trunc"] & ~d["term"]),
    }
    mismatches = {name: steps & ~eq for name, eq in equal.items()}
    # start distribution: official resets vs fluxrl's start_probs
    cells = d["reset_cells"]
    counts = np.zeros((gridworld.GRID_SIZE, gridworld.GRID_SIZE))
    np.add.at(counts, (cells[:, 0], cells[:, 1]), 1)
    probs = np.asarray(gridworld.GridWorld("two_walls").default_params().start_probs, np.float64)
    support = probs > 0
    expected = probs * len(cells)
    result = {
        "sequences": int(len(d["length"])),
        "sequences_from_official_reset": int(d["from_reset"].sum()),
        "sequences_from_17_12": int((~d["from_reset"]).sum()),
        "start_cells_equal": int((pos0 == d["starts"]).all(1).sum()),
        "start_observations_bit_equal": int((obs0 == d["start_obs"]).all(1).sum()),
        "steps_compared": int(steps.sum()),
        "max_abs_observation_diff": float(np.abs(obs - d["obs"])[steps].max()),
        "mismatches": {name: int(bad.sum()) for name, bad in mismatches.items()},
        "official_resets": int(len(cells)),
        "resets_on_cells_fluxrl_never_starts_from": int(counts[~support].sum()),
        "reset_support_cells": int((counts > 0).sum()),
        "fluxrl_support_cells": int(support.sum()),
        "reset_chi2_vs_uniform": round(float((((counts - expected) ** 2)[support] / expected[support]).sum()), 1),
        "reset_chi2_dof": int(support.sum()) - 1,
    }
    if verbose:
        r = result
        print(f"start cells equal: {r['start_cells_equal']}/{r['sequences']}; start observations bit-equal: "
              f"{r['start_observations_bit_equal']}")
        print(f"sequences {r['sequences']} ({r['sequences_from_official_reset']} from official resets, "
              f"{r['sequences_from_17_12']} from (17, 12)); steps compared {r['steps_compared']}")
        print(f"  max |observation diff| over compared steps: {r['max_abs_observation_diff']:.3g}")
        for name, bad in mismatches.items():
            print(f"  {FIELDS[name]}: {r['mismatches'][name]} mismatches")
            if bad.any():
                i, t = np.argwhere(bad)[0]
                print(f"    first: sequence {i} step {t} start {d['starts'][i].tolist()} "
                      f"action {d['actions'][i, t].tolist()}\n"
                      f"      official obs {d['obs'][i, t].tolist()} pos {d['pos'][i, t].tolist()} "
                      f"rew {d['rew'][i, t]} term {bool(d['term'][i, t])} trunc {bool(d['trunc'][i, t])}\n"
                      f"      fluxrl   obs {obs[i, t].tolist()} pos {pos[i, t].tolist()} rew {float(rew[i, t])} "
                      f"term {bool(term[i, t])} trunc {bool(trunc[i, t])}")
        print(f"official resets: {r['official_resets']}; on cells fluxrl never starts from: "
              f"{r['resets_on_cells_fluxrl_never_starts_from']}; support {r['reset_support_cells']} cells vs "
              f"fluxrl {r['fluxrl_support_cells']}; chi2 vs uniform = {r['reset_chi2_vs_uniform']} "
              f"(dof {r['reset_chi2_dof']})")
    return result


def main():
    """Print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="runs/fpo-gridworld-official/env_steps.npz",
                        help="the npz written by fpo_gridworld_official.py")
    args = parser.parse_args()
    env_check(args.steps, verbose=True)


if __name__ == "__main__":
    main()
