"""The bit-sequence test correlation: Spearman between log R(x) and an importance-sampled estimate of log p(x).

log p(x) is estimated from backward trajectories drawn from the uniform P_B (Malkin et al. 2022, sec. 5.2):

    p(x) ~= 1 / S * sum_s P_F(tau_s) / P_B(tau_s | x),    tau_s ~ P_B(. | x).

Under the uniform P_B a backward trajectory is a uniformly random order of emptying the slots, and
P_B(tau | x) = 1 / slots! whatever the order. Read forwards, such a trajectory fills the slots of x in a random
order, so every state on it is known before any network call: s_t holds x's words in the first t slots of the
order. All states of all trajectories are therefore scored as one flat batch of independent forward passes,
rather than one slot at a time; the empty state s_0, shared by every trajectory, is scored once.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from fluxrl.envs.gflownet.bitseq import BitSequence, BitSequenceState, bits_to_words, bitseq_test_set
from fluxrl.gflownet.metrics import spearman
from fluxrl.gflownet.policy import forward_log_probs

# States per policy call. Has no effect on the result; on CPU, 128-256 states (about 70 kB of activations each)
# ran 15-20% faster per state than 1024, whose intermediates no longer fit in cache.
STATES_PER_CHUNK = 256


def held_out_words(env: BitSequence, env_params, size: int, seed: int) -> np.ndarray:
    """The first `size` sequences of an evenly spaced subset of the reference test set, as words [N, slots]."""
    bits = bitseq_test_set(env, env_params, seed=seed)
    if size < len(bits):
        bits = bits[np.linspace(0, len(bits) - 1, size).round().astype(int)]
    return np.asarray(bits_to_words(jnp.asarray(bits), env.k))


def fill_orders(key: jax.Array, num_sequences: int, num_samples: int, num_slots: int) -> jax.Array:
    """int32 [N, S, slots]: for each sequence and sample, a uniformly random order of filling the slots.

    Sequence i draws from fold_in(key, i), so its orders do not depend on how many sequences are scored."""
    def orders_of(index):
        sample_keys = jax.random.split(jax.random.fold_in(key, index), num_samples)
        return jax.vmap(lambda k: jax.random.permutation(k, num_slots))(sample_keys)

    return jax.vmap(orders_of)(jnp.arange(num_sequences)).astype(jnp.int32)


def trajectory_log_pf(policy, env: BitSequence, words: jax.Array, orders: jax.Array,
                      chunk: int = STATES_PER_CHUNK) -> jax.Array:
    """log P_F of filling the slots of each sequence in each order: float [N, S].

    words: int [N, slots]; orders: int [N, S, slots], each row a permutation of the slots."""
    num_sequences, num_samples, num_slots = orders.shape
    # rank[n, s, slot] = the step at which `slot` is filled; s_t has exactly the slots with rank < t filled.
    rank = jnp.argsort(orders, axis=-1)
    steps = jnp.arange(1, num_slots)  # s_0 is the empty state, scored once below
    filled = rank[:, :, None, :] < steps[:, None]  # [N, S, slots - 1, slots]
    state_words = jnp.where(filled, words[:, None, None, :], -1)
    slot_filled = orders[:, :, 1:]  # the slot filled at s_t, t = 1 .. slots - 1
    actions = slot_filled * env.num_words + jnp.take_along_axis(words[:, None, :], slot_filled, axis=-1)

    num_states = num_sequences * num_samples * (num_slots - 1)
    num_chunks = -(-num_states // chunk)
    padding = num_chunks * chunk - num_states  # padded rows are empty states scored with action 0, then dropped
    flat_words = jnp.pad(state_words.reshape(num_states, num_slots), ((0, padding), (0, 0)), constant_values=-1)
    flat_actions = jnp.pad(actions.reshape(num_states), (0, padding))

    def score(chunk_words, chunk_actions):
        states = BitSequenceState(chunk_words, jnp.zeros(chunk_words.shape[0], bool))
        log_pf = jax.vmap(lambda state: forward_log_probs(policy, env, state)[0])(states)
        return jnp.take_along_axis(log_pf, chunk_actions[:, None], axis=1)[:, 0]

    chunked = jax.lax.map(lambda args: score(*args),
                          (flat_words.reshape(num_chunks, chunk, num_slots), flat_actions.reshape(num_chunks, chunk)))
    later_steps = chunked.reshape(-1)[:num_states].reshape(num_sequences, num_samples, num_slots - 1)

    empty = BitSequenceState(jnp.full(num_slots, -1, jnp.int32), jnp.array(False))
    first_actions = orders[:, :, 0] * env.num_words + jnp.take_along_axis(words, orders[:, :, 0], axis=-1)
    first_step = forward_log_probs(policy, env, empty)[0][first_actions]
    return first_step + jnp.sum(later_steps, axis=-1)


@functools.lru_cache(maxsize=4)
def _log_p_estimator(env: BitSequence, num_samples: int):
    """A jitted (policy, words [N, slots], key) -> log p estimate [N], from uniform-P_B backward trajectories."""

    def log_p(policy, words, key):
        orders = fill_orders(key, words.shape[0], num_samples, env.num_slots)
        log_pf = trajectory_log_pf(policy, env, words, orders)
        log_pb = -jax.scipy.special.gammaln(env.num_slots + 1.0)  # log(1 / slots!) for every order
        return jax.nn.logsumexp(log_pf - log_pb, axis=1) - jnp.log(num_samples)

    return eqx.filter_jit(log_p)


def spearman_on_test_set(env_config, env: BitSequence, policy, env_params, key: jax.Array) -> float:
    """Spearman correlation of log R(x) with the estimated log p(x) over the (possibly subsampled) test set of a
    `BitSequenceConfig`."""
    words = held_out_words(env, env_params, env_config.test_set_size, env_config.mode_seed)
    estimates = np.asarray(_log_p_estimator(env, env_config.test_backward_samples)(policy, jnp.asarray(words), key))
    states = BitSequenceState(jnp.asarray(words), jnp.ones(len(words), bool))
    log_reward = np.asarray(jax.vmap(env.log_reward, (None, 0))(env_params, states))
    return spearman(log_reward, estimates)
