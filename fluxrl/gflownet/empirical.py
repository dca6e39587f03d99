"""The empirical L1 of Tiapkin et al. 2024 (their hypergrid metric), kept inside the train state.

Each seed keeps a ring buffer of the state indices of the last W terminal objects its main policy sampled for
training. Inside the jitted evaluation, p_hat is the histogram of the filled part of the buffer and

    empirical_l1 = mean over terminal objects x of |p_hat(x) - p*(x)|

(official code: `hypergrid/experiments/utils.py`, lines 64-68, W = 200,000 from `config/general.py` line 10).
Before W samples exist, p_hat is the histogram of all samples so far, as in the official slice `[-W:]`; with no
sample yet, p_hat = 0. Definition and noise floor in docs/metrics.md.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from fluxrl.core.config import ConfigError, check_range
from fluxrl.envs.gflownet.base import MAX_ENUMERABLE_STATES, is_enumerable
from fluxrl.envs.gflownet.hypergrid import Hypergrid

# A mass below this is taken as this in `origin_block_log_mass`, so the log of an unvisited block stays finite.
MASS_FLOOR = 1e-30


class EmpiricalWindow(NamedTuple):
    """The state indices of the last sampled terminal objects of one seed: a ring buffer of int32."""

    indices: jax.Array  # int32 [W]; slots at or past `count` are unused
    position: jax.Array  # the next slot to write
    count: jax.Array  # filled slots, at most W


def check_window(env_config, size: int) -> None:
    """ConfigError unless `size` >= 0 and, when it is > 0, the environment has an exact target distribution."""
    check_range("empirical_window", size, 0)
    if size:
        env = env_config.build()[0]
        if not (is_enumerable(env) and env.num_states <= MAX_ENUMERABLE_STATES):
            raise ConfigError("empirical_window must be 0 for this environment: empirical_l1 needs the exact target "
                              "distribution of an enumerable one (hypergrid, structure learning, small bit sequences).")


def window_init(size: int) -> EmpiricalWindow:
    """An empty window of `size` slots (size 0: the metric is off and the state holds no array of note)."""
    return EmpiricalWindow(jnp.zeros(size, jnp.int32), jnp.int32(0), jnp.int32(0))


def window_add(window: EmpiricalWindow, state_indices: jax.Array) -> EmpiricalWindow:
    """The window with a batch of sampled objects' state indices [B] written over its oldest slots."""
    size = window.indices.shape[0]
    if size == 0:
        return window
    batch = state_indices.shape[0]
    # A batch larger than the window keeps only its last `size` indices, each written once.
    kept = state_indices[-size:].astype(jnp.int32)
    slots = (window.position + jnp.arange(kept.shape[0])) % size
    return EmpiricalWindow(window.indices.at[slots].set(kept), (window.position + kept.shape[0]) % size,
                           jnp.minimum(window.count + batch, size))


def window_add_states(window: EmpiricalWindow, env, final_states) -> EmpiricalWindow:
    """The window with a batch of sampled terminal objects (env states, leaves [B, ...]) added."""
    if window.indices.shape[0] == 0:
        return window
    return window_add(window, jax.vmap(env.state_index)(final_states))


def empirical_distribution(window: EmpiricalWindow, num_states: int) -> jax.Array:
    """p_hat [num_states]: the fraction of the window's filled slots holding each state index (0 if empty)."""
    filled = jnp.arange(window.indices.shape[0]) < window.count
    counts = jnp.zeros(num_states, jnp.float32).at[window.indices].add(filled.astype(jnp.float32))
    return counts / jnp.maximum(window.count, 1).astype(jnp.float32)


def terminal_objects(tables) -> jax.Array:
    """bool [S]: the state indices that are terminal objects (some terminating edge ends there), from the exact
    evaluation tables (`metrics.ExactTables`)."""
    num_levels, width, _ = tables.parents.shape
    return tables.terminal_parents[:, 0] != num_levels * width


def empirical_l1(p_hat: jax.Array, target: jax.Array, is_object: jax.Array) -> jax.Array:
    """Tiapkin et al. 2024's L1: the mean over terminal objects x of |p_hat(x) - p*(x)|."""
    gaps = jnp.where(is_object, jnp.abs(p_hat - target), 0.0)
    return jnp.sum(gaps) / jnp.sum(is_object)


def origin_block(env, states) -> jax.Array | None:
    """bool [S]: the hypergrid cells in the origin's orthant (every coordinate below H / 2), where a policy that
    never leaves the start region keeps its mass; None for other environments."""
    if not isinstance(env, Hypergrid):
        return None
    return jnp.all(2 * states.coords < env.height, axis=-1)


def empirical_metrics(env, window: EmpiricalWindow, tables) -> dict[str, jax.Array]:
    """empirical_l1 of the window against the exact target and, on hypergrids, origin_block_log_mass (the log
    of the window's share in the origin's orthant); nothing when the window is off or the env not exact."""
    if window.indices.shape[0] == 0 or tables is None:
        return {}
    p_hat = empirical_distribution(window, tables.target.shape[0])
    metrics = {"empirical_l1": empirical_l1(p_hat, tables.target, terminal_objects(tables))}
    block = origin_block(env, tables.states)
    if block is not None:
        metrics["origin_block_log_mass"] = jnp.log(jnp.maximum(jnp.sum(jnp.where(block, p_hat, 0.0)), MASS_FLOOR))
    return metrics
