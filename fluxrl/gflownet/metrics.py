"""Exact and estimated quality metrics for GFlowNets; every definition is also in docs/metrics.md.

Exact metrics compare the terminal distribution p of the forward policy, computed by dynamic programming over
the whole DAG (no sampling error), with the target p*(x) = R(x) / Z.
"""

from __future__ import annotations

import functools

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


def target_distribution(env: EnumerableDAGEnv, env_params) -> np.ndarray:
    """p*(x) = R(x) / Z over terminal objects, indexed like `exact_terminal_distribution`."""
    terminals = env.terminal_states()
    log_rewards = np.asarray(jax.vmap(env.log_reward, (None, 0))(env_params, terminals), np.float64)
    index = np.asarray(jax.vmap(env.state_index)(terminals))
    target = np.zeros(env.num_states)
    target[index] = np.exp(log_rewards - log_rewards.max())
    return target / target.sum()


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)
