"""Exact and estimated quality metrics for GFlowNets; every definition is also in docs/metrics.md.

Exact metrics compare the terminal distribution p of the forward policy, computed by dynamic programming over
the whole DAG (no sampling error), with the target p*(x) = R(x) / Z: on the host in float64
(`exact_terminal_distribution`, `distribution_metrics`), or inside jit in float32, vmappable over seeds, from
tables built once per run (`exact_tables`, `exact_distribution_metrics`).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from fluxrl.envs.gflownet.base import EnumerableDAGEnv
from fluxrl.gflownet.policy import forward_log_probs

# Probabilities below this are treated as this in log-ratio metrics, so kl stays finite when p(x) = 0.
PROBABILITY_FLOOR = 1e-30


def tv(p: np.ndarray, target: np.ndarray) -> float:
    """Total variation distance: 0.5 * sum_x |p(x) - p*(x)|, in [0, 1]."""
    return 0.5 * float(np.abs(p - target).sum())


def l1_sum(p: np.ndarray, target: np.ndarray) -> float:
    """Summed L1 distance: sum_x |p(x) - p*(x)| = 2 * tv, in [0, 2]."""
    return float(np.abs(p - target).sum())


def kl(p: np.ndarray, target: np.ndarray) -> float:
    """KL(p* || p) = sum_x p*(x) log(p*(x) / p(x)) in nats, with p floored at 1e-30."""
    support = target > 0
    return float(np.sum(target[support] * (np.log(target[support])
                                           - np.log(np.maximum(p[support], PROBABILITY_FLOOR)))))


def jsd(p: np.ndarray, target: np.ndarray) -> float:
    """Jensen-Shannon divergence in nats: 0.5 KL(p* || m) + 0.5 KL(p || m), m = (p + p*) / 2; in [0, log 2]."""
    mixture = 0.5 * (p + target)
    return 0.5 * kl(mixture, target) + 0.5 * kl(mixture, p)


def distribution_metrics(p: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """tv, l1_sum, kl and jsd of p against the target, by their documented names."""
    return {"tv": tv(p, target), "l1_sum": l1_sum(p, target), "kl": kl(p, target), "jsd": jsd(p, target)}


@functools.lru_cache(maxsize=8)
def transition_table(env: EnumerableDAGEnv) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(child index [S, A], child is terminated [S, A], forward mask [S, A]) over all states and actions."""
    states = env.all_states()
    actions = jnp.arange(env.num_actions)

    @jax.jit
    def table(states):
        children = jax.vmap(lambda s: jax.vmap(lambda a: env.step(s, a))(actions))(states)
        index = jax.vmap(jax.vmap(env.state_index))(children)
        terminated = jax.vmap(jax.vmap(env.is_terminal))(children)
        return index, terminated, jax.vmap(env.forward_mask)(states)

    return tuple(np.asarray(x) for x in table(states))


@functools.lru_cache(maxsize=8)
def _batched_log_pf(env):
    return eqx.filter_jit(jax.vmap(lambda policy, s: forward_log_probs(policy, env, s)[0], (None, 0)))


def all_forward_probabilities(policy, env: EnumerableDAGEnv, chunk: int = 8192) -> np.ndarray:
    """P_F(a | s) for every state and action, [S, A] float64."""
    states = env.all_states()
    num_states = jax.tree.leaves(states)[0].shape[0]
    parts = []
    for start in range(0, num_states, chunk):
        part = jax.tree.map(lambda x: x[start:start + chunk], states)
        parts.append(np.asarray(_batched_log_pf(env)(policy, part), np.float64))
    return np.exp(np.concatenate(parts))


def terminal_distribution_from_probabilities(env: EnumerableDAGEnv, env_params, forward_probs: np.ndarray) -> np.ndarray:
    """The exact distribution over terminal objects induced by forward probabilities [S, A], by DP on the DAG."""
    children, terminated, mask = transition_table(env)
    num_states = children.shape[0]
    flows = np.where(mask, forward_probs, 0.0)
    to_terminal = mask & terminated
    to_state = mask & ~terminated
    start = int(env.state_index(env.reset(env_params, jax.random.PRNGKey(0))))
    mass = np.zeros(num_states)
    mass[start] = 1.0
    p = np.zeros(num_states)
    for _ in range(env.max_length + 1):
        flow = mass[:, None] * flows
        p += np.bincount(children[to_terminal], flow[to_terminal], minlength=num_states)
        mass = np.bincount(children[to_state], flow[to_state], minlength=num_states)
        if not mass.any():
            break
    return p


def exact_terminal_distribution(policy, env: EnumerableDAGEnv, env_params) -> np.ndarray:
    """The exact terminal distribution of `policy`'s P_F, indexed by env.state_index of the terminal object."""
    return terminal_distribution_from_probabilities(env, env_params, all_forward_probabilities(policy, env))


# Compiled once per environment: op by op, the many tiny programs compile slower than the work they do.
@functools.partial(jax.jit, static_argnums=0)
def _log_rewards(env: EnumerableDAGEnv, env_params, states) -> jax.Array:
    return jax.vmap(env.log_reward, (None, 0))(env_params, states)


@functools.partial(jax.jit, static_argnums=0)
def _state_indices(env: EnumerableDAGEnv, states) -> jax.Array:
    return jax.vmap(env.state_index)(states)


def target_distribution(env: EnumerableDAGEnv, env_params) -> np.ndarray:
    """p*(x) = R(x) / Z over terminal objects, indexed like `exact_terminal_distribution`."""
    terminals = env.terminal_states()
    log_rewards = np.asarray(_log_rewards(env, env_params, terminals), np.float64)
    index = np.asarray(_state_indices(env, terminals))
    target = np.zeros(env.num_states)
    target[index] = np.exp(log_rewards - log_rewards.max())
    return target / target.sum()


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


# ---------------------------------------------------------------------------------------------------------------
# The same exact metrics inside jit, vmappable over the policy (a leading seed axis on its arrays).
#
# Why the DP pulls mass level by level: each state is visited once, after all its parents, so the work is about
# S * (parents per state) rather than (max_length + 1) * S * A. Measured on 2 shared CPU cores, hypergrid 4-D 20^4
# (160,000 states, 78 levels), DP alone: 10 ms, against 96 ms for a segment_sum over all states per level and
# 304 ms for a gather over all states per level. Whole evaluation of one MLP policy (width 256, depth 2), host
# (float64 numpy DP) against jitted: 4-D 8^4 15 ms / 8 ms, 2-D 64x64 26 ms / 4 ms, 4-D 20^4 1.02 s / 0.19 s,
# 3-D 125^3 (1.95M states) 102 s / 3.2 s; 4 seeds, host one by one against vmapped: 8^4 74 / 67 ms, 64x64
# 117 / 25 ms, 20^4 4.35 / 1.15 s. The policy network is most of the jitted time.


class ExactTables(NamedTuple):
    """Everything the jitted exact DP reads, built once per run by `exact_tables` and shared by every seed.

    The DP visits states level by level, a level being the longest path from the start state, so every parent of
    a state is final before the state is; levels are padded to a common width W, and state slot (l, j) sits at
    position l * W + j of the level layout, whose extra last position L * W always holds mass 0. Sizes: S states,
    A actions, L levels, W slots a level, P most parents of a state, T most states that end in one object."""

    states: Any  # every state the policy acts in, leading axis S, in state_index order: the policy's inputs
    parents: jax.Array  # int32 [L, W, P]: level-layout positions of each slot's parents (L * W: none)
    parent_edges: jax.Array  # int32 [L, W, P]: parent state index * A + action of those edges (0: none)
    terminal_parents: jax.Array  # int32 [S, T]: level-layout positions of the states that end in x (L * W: none)
    terminal_edges: jax.Array  # int32 [S, T]: parent state index * A + action of those terminating edges
    target: jax.Array  # float32 [S]: p*(x) = R(x) / Z at the state_index of x
    log_target: jax.Array  # float32 [S]: log p*(x) from float64, 0 where p*(x) = 0


def _in_edges(destination: np.ndarray, sources: np.ndarray, edge_ids: np.ndarray, num_rows: int,
              empty_source: int) -> tuple[np.ndarray, np.ndarray]:
    """([num_rows, P] sources, [num_rows, P] edge ids) of the edges into each row, padded with (empty_source, 0)."""
    order = np.argsort(destination, kind="stable")
    destination, sources, edge_ids = destination[order], sources[order], edge_ids[order]
    counts = np.bincount(destination, minlength=num_rows)
    rank = np.arange(len(destination)) - np.repeat(np.cumsum(counts) - counts, counts)
    width = max(int(counts.max(initial=0)), 1)
    row_sources = np.full((num_rows, width), empty_source, np.int32)
    row_edges = np.zeros((num_rows, width), np.int32)
    row_sources[destination, rank] = sources
    row_edges[destination, rank] = edge_ids
    return row_sources, row_edges


def exact_tables(env: EnumerableDAGEnv, env_params) -> ExactTables:
    """The read-only arrays `exact_distribution_metrics` needs for `env` with reward `env_params` (host-side)."""
    children, terminated, mask = transition_table(env)
    num_states, num_actions = children.shape
    states = env.all_states()
    if num_states != env.num_states or not np.array_equal(np.asarray(_state_indices(env, states)),
                                                          np.arange(num_states)):
        raise ValueError("env.all_states() must list env.num_states states in state_index order.")
    # The start state's index is its position in all_states (found on the host: no program to compile).
    is_start = functools.reduce(np.logical_and, [
        (np.asarray(x).reshape(num_states, -1) == np.asarray(x0).reshape(1, -1)).all(axis=1)
        for x, x0 in zip(jax.tree.leaves(states), jax.tree.leaves(env.reset(env_params, jax.random.PRNGKey(0))))])
    start = int(np.flatnonzero(is_start)[0])
    # Longest path from the start over non-terminating edges; a state's last assignment is its longest path.
    to_state = mask & ~terminated
    level = np.full(num_states, -1)
    level[start], frontier = 0, np.array([start])
    for depth in range(1, env.max_length + 2):
        frontier = np.unique(children[frontier][to_state[frontier]])
        level[frontier] = depth
    if len(frontier):
        raise ValueError(f"a path from the start is longer than env.max_length = {env.max_length}.")
    reached = np.flatnonzero(level >= 0)  # sorted by index; a stable sort by level keeps that within a level
    by_level = reached[np.argsort(level[reached], kind="stable")]
    sizes = np.bincount(level[reached])
    num_levels, width = len(sizes), int(sizes.max())
    slot = np.arange(len(by_level)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    position = np.full(num_states, num_levels * width)
    position[by_level] = level[by_level] * width + slot
    # Edges leaving reached states only: the others carry no mass.
    source, action = np.nonzero(mask & (level >= 0)[:, None])
    destination, ends = children[source, action], terminated[source, action]
    edge_ids = source * num_actions + action
    parents, parent_edges = _in_edges(position[destination[~ends]], position[source[~ends]], edge_ids[~ends],
                                      num_levels * width, num_levels * width)
    terminal_parents, terminal_edges = _in_edges(destination[ends], position[source[ends]], edge_ids[ends],
                                                 num_states, num_levels * width)
    target = target_distribution(env, env_params)
    log_target = np.log(np.where(target > 0, target, 1.0))
    return ExactTables(states, jnp.asarray(parents.reshape(num_levels, width, -1)),
                       jnp.asarray(parent_edges.reshape(num_levels, width, -1)), jnp.asarray(terminal_parents),
                       jnp.asarray(terminal_edges), jnp.asarray(target, jnp.float32),
                       jnp.asarray(log_target, jnp.float32))


def _forward_probabilities(policy, env: EnumerableDAGEnv, states, chunk: int) -> jax.Array:
    """P_F(a | s) for every state and action, flat [S * A] float32, `chunk` states at a time."""
    num_states = jax.tree.leaves(states)[0].shape[0]
    log_pf = jax.lax.map(lambda state: forward_log_probs(policy, env, state)[0], states,
                         batch_size=min(chunk, num_states))
    return jnp.exp(log_pf).reshape(-1)


def terminal_distribution_jit(policy, env: EnumerableDAGEnv, tables: ExactTables, chunk: int = 8192) -> jax.Array:
    """The exact terminal distribution of `policy`'s P_F, float32 [S] indexed by state_index; jittable."""
    probs = _forward_probabilities(policy, env, tables.states, chunk)
    num_levels, width, _ = tables.parents.shape
    mass = jnp.zeros(num_levels * width + 1, probs.dtype).at[0].set(1.0)  # the start state is slot (0, 0)

    def level(l, mass):
        incoming = mass[tables.parents[l]] * probs[tables.parent_edges[l]]
        return jax.lax.dynamic_update_slice(mass, jnp.sum(incoming, axis=-1), (l * width,))

    mass = jax.lax.fori_loop(1, num_levels, level, mass)
    return jnp.sum(mass[tables.terminal_parents] * probs[tables.terminal_edges], axis=-1)


def _total(x: jax.Array) -> jax.Array:
    """The sum of a vector by pairwise halving, so float32 rounding grows with log S rather than with S."""
    x = jnp.pad(x, (0, (1 << max(x.shape[0] - 1, 0).bit_length()) - x.shape[0]))
    while x.shape[0] > 1:
        x = x[0::2] + x[1::2]
    return x[0]


def _kl_terms(p: jax.Array, log_p: jax.Array, q: jax.Array) -> jax.Array:
    """Per-x terms of KL(p || q) = sum_x p log(p / q) over p > 0, with q floored like `kl`."""
    q = jnp.maximum(q, PROBABILITY_FLOOR)
    # Where p and q are close, log(p / q) = log1p((p - q) / q): p - q is then exact in float32, whereas
    # log p - log q would cancel to an error of about 1e-7 |log p| (a divergence of a near-exact fit is mostly that).
    relative = (p - q) / q
    log_ratio = jnp.where(jnp.abs(relative) < 0.5, jnp.log1p(relative), log_p - jnp.log(q))
    return jnp.where(p > 0, p * log_ratio, 0.0)


def exact_distribution_metrics(policy, env: EnumerableDAGEnv, tables: ExactTables,
                               chunk: int = 8192) -> dict[str, jax.Array]:
    """tv, l1_sum, kl and jsd (as in `distribution_metrics`) of `policy`'s exact terminal distribution against
    the target, float32 scalars; jittable and vmappable over `policy`.

    Measured against the host float64 values, untrained MLPs as they are and with logits x20 on hypergrids up to
    1.95M states and structure learning on 3 nodes: tv within 8e-8, l1_sum 2e-7, jsd 2e-7, kl 2.4e-6 (kl up to
    51 nats, so about 1e-7 relative: the float32 spacing of kl itself)."""
    p = terminal_distribution_jit(policy, env, tables, chunk)
    target = tables.target
    mixture = 0.5 * (p + target)
    log_p = jnp.log(jnp.where(p > 0, p, 1.0))
    l1 = _total(jnp.abs(p - target))
    kl_target = _total(_kl_terms(target, tables.log_target, p))
    jsd_value = 0.5 * _total(_kl_terms(target, tables.log_target, mixture) + _kl_terms(p, log_p, mixture))
    return {"tv": 0.5 * l1, "l1_sum": l1, "kl": kl_target, "jsd": jsd_value}
