"""The bit-sequence test correlation: Spearman between log R(x) and an importance-sampled estimate of log p(x)."""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from fluxrl.envs.gflownet.bitseq import BitSequence, BitSequenceState, bits_to_words, bitseq_test_set
from fluxrl.gflownet.metrics import spearman
from fluxrl.gflownet.policy import forward_log_probs


def test_words(env: BitSequence, env_params, size: int, seed: int) -> np.ndarray:
    """The first `size` sequences of an evenly spaced subset of the reference test set, as words [N, slots]."""
    bits = bitseq_test_set(env, env_params, seed=seed)
    if size < len(bits):
        bits = bits[np.linspace(0, len(bits) - 1, size).round().astype(int)]
    return np.asarray(bits_to_words(jnp.asarray(bits), env.k))


@functools.lru_cache(maxsize=4)
def _log_p_estimator(env: BitSequence, num_samples: int):
    """A jitted (policy, words [N, slots], key) -> log p estimate [N], from uniform-P_B backward trajectories."""

    def log_p(policy, words, key):
        def one_trajectory(words, key):
            # Under the uniform P_B every order of emptying the slots is equally likely, so a backward
            # trajectory is a random permutation; its P_B is 1 / slots! whatever the order.
            order = jax.random.permutation(key, env.num_slots)

            def fill(state, slot):
                log_pf, _, _ = forward_log_probs(policy, env, state)
                action = slot * env.num_words + words[slot]
                return env.step(state, action), log_pf[action]

            empty = BitSequenceState(jnp.full(env.num_slots, -1, jnp.int32), jnp.array(False))
            _, log_pfs = jax.lax.scan(fill, empty, order)
            return jnp.sum(log_pfs)

        keys = jax.random.split(key, num_samples)
        log_pf = jax.vmap(one_trajectory, (None, 0))(words, keys)
        log_pb = -jax.scipy.special.gammaln(env.num_slots + 1.0)
        return jax.nn.logsumexp(log_pf - log_pb) - jnp.log(num_samples)

    def batched(policy, words, key):
        keys = jax.random.split(key, words.shape[0])
        return jax.vmap(log_p, (None, 0, 0))(policy, words, keys)

    return eqx.filter_jit(batched)


def test_correlation(config, env: BitSequence, policy, env_params, key: jax.Array, chunk: int = 240) -> float:
    """Spearman correlation of log R(x) with the estimated log p(x) over the (possibly subsampled) test set."""
    words = test_words(env, env_params, config.test_set_size, config.mode_seed)
    estimator = _log_p_estimator(env, config.test_backward_samples)
    estimates = []
    for start in range(0, len(words), chunk):
        part = jnp.asarray(words[start:start + chunk])
        estimates.append(np.asarray(estimator(policy, part, jax.random.fold_in(key, start))))
    states = BitSequenceState(jnp.asarray(words), jnp.ones(len(words), bool))
    log_reward = np.asarray(jax.vmap(env.log_reward, (None, 0))(env_params, states))
    return spearman(log_reward, np.concatenate(estimates))
