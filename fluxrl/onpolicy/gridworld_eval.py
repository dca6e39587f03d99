"""Does a policy keep several goals? Measurements of an on-policy agent on FPO's grid world (McAllister et al. 2025,
section 5.1: at saddle states a flow policy's actions are bimodal, where a Gaussian commits to one goal).

- At every saddle state of the layout (`gridworld.saddle_states`: equally near the two nearest goals), the policy's
  actions are sampled and each sample's grid move is classified by the goal it heads to: a move heads to goal j when
  it brings the agent closer to goal j and not closer to the other (fewest-move distances, walls and the grid's edge
  as the environment applies them). `saddle_split` is the mean over saddle states of the smaller of the two
  shares: 0 for a policy that commits to one goal at every saddle state, 0.5 for an even split; `saddle_bimodal`
  the share of saddle states where both goals hold at least 20% of the samples; `start_split` the smaller share at
  the start cell.
- `saddle_two_modes` is the share of saddle states where the policy's own samples (before any tanh or clip) are two
  modes (`fluxrl/onpolicy/bimodality.py`: the band between the two fitted modes holds under half the samples of the
  sparser mode's band, and the smaller mode holds at least 20%) whose centres head to different goals; `start_dip`
  and `start_two_modes` the dip and that verdict at the start cell. Unlike `saddle_split`, a broad unimodal policy
  of any width fails them.
- `saddle_move_modes` judges the moves instead (what the environment does with the samples): the share of saddle
  states where both goals hold at least 20% of the moves and the moves heading to neither goal are fewer than half
  of the smaller goal's. An untrained policy and a Gaussian as wide as the action box fail it; a Gaussian much wider
  than the box passes it, because the environment's clip piles such a policy's mass onto the two goal directions.
- From the layout's start cell (`gridworld.start_position`, a saddle state), `rollouts` episodes run with the
  stochastic policy; `goals_reached` counts the distinct goals their first episodes end in, and `goal_k_share` the
  share of those episodes that end in goal k.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from fluxrl.envs.control import gridworld
from fluxrl.onpolicy import bimodality, normalization, rollout

# The nine grid moves, in the order `move_index` numbers them.
MOVES = np.array([(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)], np.int32)
SAMPLES_PER_STATE = 1000  # the criterion: each goal direction holds >= 20% of 1,000 samples
ROLLOUTS = 64  # episodes from the start cell per evaluation
BIMODAL_SHARE = 0.2  # a saddle state is bimodal when both goal directions hold at least this share

# policy_of(config)(actor) -> the rollout's Sample function (env actions first), as ppo.sample / fpo.sample.
PolicyOf = Callable[[Any], Callable[[Any], rollout.Sample]]


def layout_of(env_name: str) -> str | None:
    """The grid-world layout an environment name registers (gridworld-two-walls -> two_walls), None otherwise."""
    prefix = "gridworld-"
    if not env_name.startswith(prefix):
        return None
    layout = env_name[len(prefix):].replace("-", "_")
    return layout if layout in gridworld.LAYOUTS else None


@lru_cache(maxsize=None)
def saddle_headings(layout: str) -> tuple[np.ndarray, np.ndarray]:
    """(saddle cells [n, 2], headings [n, 9]: for each move, the goal side it heads to, 0 or 1, or -1 for neither)."""
    distances, _ = gridworld._target_distances(layout)
    walls = gridworld._layout_maps(layout)[2]
    cells = gridworld.saddle_states(layout)
    headings = np.full((len(cells), len(MOVES)), -1, np.int32)
    for i, (x, y) in enumerate(cells):
        nearest = np.argsort(distances[:, x, y], kind="stable")[:2]
        for m, move in enumerate(MOVES):
            tx, ty = np.clip((x + move[0], y + move[1]), 0, gridworld.GRID_SIZE - 1)
            if walls[tx, ty]:
                tx, ty = x, y
            closer = [distances[j, tx, ty] < distances[j, x, y] for j in nearest]
            if closer[0] != closer[1]:
                headings[i, m] = 0 if closer[0] else 1
    return cells, headings


def move_index(action: jax.Array) -> jax.Array:
    """Index into MOVES of the grid move of env actions [..., 2] (clipped, rounded half to even, as the env)."""
    move = gridworld.action_move(action)
    return (move[..., 0] + 1) * 3 + (move[..., 1] + 1)


def heading_shares(headings: jax.Array, moves: jax.Array) -> jax.Array:
    """Shares [n, 2] of the samples moves [n, m] (indices into MOVES) at each state heading to either goal side."""
    side = jnp.take_along_axis(headings, moves, axis=1)
    return jnp.stack([jnp.mean(side == 0, axis=1), jnp.mean(side == 1, axis=1)], axis=1)


def move_modes(shares: jax.Array) -> jax.Array:
    """Whether the moves at each state [n] are two goal modes, from their goal shares [n, 2] (module docstring)."""
    smaller = jnp.min(shares, axis=1)
    neither = 1.0 - jnp.sum(shares, axis=1)
    return (smaller >= BIMODAL_SHARE) & (neither < bimodality.MAX_DIP * smaller)


def saddle_actions(policy: rollout.Sample, stats, cells: jax.Array, key: jax.Array, samples: int,
                   own: bool = False) -> jax.Array:
    """Env actions [n, samples, 2] of `policy` at cells [n, 2] (observations normalised by `stats`, or not if None);
    with `own`, the policy's own samples before any squashing or clipping."""
    observation = normalization.normalize(stats, gridworld.observe(jnp.asarray(cells)))
    repeated = jnp.repeat(observation, samples, axis=0)
    actions = policy(repeated, key)[1 if own else 0]
    return actions.reshape(len(cells), samples, -1)


def env_action(config, own_action: jax.Array) -> jax.Array:
    """What the environment gets for a policy's own sample: its tanh, or itself (squash none)."""
    return jnp.tanh(own_action) if config.squash == "tanh" else own_action


def two_goal_modes(config, headings: jax.Array, own_actions: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(dip [n], two modes heading to different goals [n] bool) of own samples [n, samples, 2] at n saddle states
    with move headings [n, 9]."""
    ratio, weight, means = jax.vmap(bimodality.dip)(own_actions)
    mode_sides = jnp.take_along_axis(headings, move_index(env_action(config, means)), axis=1)  # [n, 2]
    apart = (jnp.sort(mode_sides, axis=1) == jnp.array([0, 1])).all(axis=1)
    return ratio, (ratio < bimodality.MAX_DIP) & (weight >= bimodality.MIN_WEIGHT) & apart


def start_rollouts(policy: rollout.Sample, stats, layout: str, params: gridworld.GridWorldParams, key: jax.Array,
                   episodes: int) -> jax.Array:
    """Goal index (-1: none) of the end of the first episode of each of `episodes` runs from the start cell."""
    env = gridworld.GridWorld(layout)
    params = gridworld.start_at(params, gridworld.start_position(layout))
    reset_key, key = jax.random.split(key)
    observation, state = jax.vmap(env.reset, (0, None))(jax.random.split(reset_key, episodes), params)

    def step(carry, step_key):
        observation, state, outcome, running = carry
        act_key, env_key = jax.random.split(step_key)
        action = policy(normalization.normalize(stats, observation), act_key)[0]
        out = jax.vmap(env.step, (0, 0, 0, None))(jax.random.split(env_key, episodes), state, action, params)
        ended = running & (out.terminated | out.truncated)
        cell = gridworld.observation_position(out.final_observation)
        outcome = jnp.where(ended, gridworld.goal_index(params, cell), outcome)
        return (out.observation, out.state, outcome, running & ~ended), None

    start = (observation, state, jnp.full(episodes, -1, jnp.int32), jnp.ones(episodes, bool))
    (_, _, outcome, _), _ = jax.lax.scan(step, start, jax.random.split(key, gridworld.MAX_STEPS))
    return outcome


def evaluation(policy_of: PolicyOf) -> Callable:
    """An `Algorithm.evaluate` (config, env_params, state, key) -> metrics for grid-world runs (module docstring)."""
    def evaluate(config, env_params, state, key):
        layout = layout_of(config.env)
        cells, headings = saddle_headings(layout)
        policy = policy_of(config)(state.actor)
        stats = state.obs_stats if config.normalize_observations else None
        saddle_key, rollout_key = jax.random.split(key)
        own = saddle_actions(policy, stats, cells, saddle_key, SAMPLES_PER_STATE, own=True)
        shares = heading_shares(jnp.asarray(headings), move_index(env_action(config, own)))
        dips, two_modes = two_goal_modes(config, jnp.asarray(headings), own)
        smaller = jnp.min(shares, axis=1)
        start = int(np.flatnonzero((cells == gridworld.start_position(layout)).all(axis=1))[0])
        outcome = start_rollouts(policy, stats, layout, env_params, rollout_key, ROLLOUTS)
        metrics = {"saddle_split": jnp.mean(smaller), "saddle_bimodal": jnp.mean(smaller >= BIMODAL_SHARE),
                   "start_split": smaller[start], "saddle_two_modes": jnp.mean(two_modes),
                   "saddle_move_modes": jnp.mean(move_modes(shares)),
                   "start_dip": dips[start], "start_two_modes": two_modes[start].astype(jnp.float32),
                   "goals_reached": jnp.sum(jnp.any(outcome[:, None] == jnp.arange(gridworld.MAX_GOALS), axis=0))}
        for goal in range(gridworld.MAX_GOALS):
            metrics[f"goal_{goal}_share"] = jnp.mean(outcome == goal)
        return metrics
    return evaluate


def with_gridworld_evaluation(algorithm, config, policy_of: PolicyOf):
    """`algorithm` with the grid-world evaluation when `config.env` is a grid world, unchanged otherwise."""
    if layout_of(config.env) is None:
        return algorithm
    return algorithm._replace(evaluate=evaluation(policy_of))
