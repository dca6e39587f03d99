"""The bit-sequence log p(x) estimator of `bitseq_eval` against the exact terminal distribution of a small policy.

On n = 6 bits in k = 2 bit words (3 slots, 64 sequences) every fill order can be listed, so p(x) of any policy
is known exactly: the sum over the 3! orders of the product of P_F along the order.
"""

import itertools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fluxrl.envs.gflownet.bitseq import BitSequence, BitSequenceState, bitseq_params
from fluxrl.gflownet import bitseq_eval
from fluxrl.gflownet.metrics import exact_terminal_distribution

ENV = BitSequence(n=6, k=2, num_modes=1)
ALL_WORDS = np.array(list(itertools.product(range(ENV.num_words), repeat=ENV.num_slots)), np.int32)  # [64, 3]
ALL_ORDERS = np.array(list(itertools.permutations(range(ENV.num_slots))), np.int32)  # [6, 3]


class RandomSlotPolicy(eqx.Module):
    """A random MLP over the one-hot slot tokens, with weights large enough that P_F depends strongly on which
    slots are already filled (so different fill orders of one sequence have very different probabilities)."""

    net: eqx.nn.MLP

    def __init__(self, key):
        self.net = eqx.nn.MLP(ENV.num_slots * (ENV.num_words + 1), ENV.num_actions + ENV.num_slots + 1, 32, 2,
                              key=key)
        self.net = jax.tree.map(lambda x: 3.0 * x if eqx.is_array(x) else x, self.net)

    def __call__(self, tokens):
        out = self.net(jax.nn.one_hot(tokens, ENV.num_words + 1).reshape(-1))
        return out[:ENV.num_actions], out[ENV.num_actions:-1], out[-1]


POLICY = RandomSlotPolicy(jax.random.PRNGKey(7))


def _log_pf_table(policy):
    """log P_F(a | s) [num_states, num_actions] over every state of ENV, masked by hand."""
    states = ENV.all_states()
    logits = jax.vmap(lambda s: policy(ENV.obs(s))[0])(states)
    mask = jax.vmap(ENV.forward_mask)(states)
    return np.asarray(jax.nn.log_softmax(jnp.where(mask, logits, -jnp.inf), axis=-1), np.float64)


def _exact_order_log_pf(policy):
    """float64 [64, 6]: log P_F of filling each sequence's slots in each order, by brute force over states."""
    table = _log_pf_table(policy)
    states, actions = [], []  # the state before each step of every (sequence, order), and the action taken
    for words in ALL_WORDS:
        for order in ALL_ORDERS:
            state_words = np.full(ENV.num_slots, -1, np.int32)
            for slot in order:
                states.append(state_words.copy())
                actions.append(slot * ENV.num_words + words[slot])
                state_words[slot] = words[slot]
    index = np.asarray(jax.vmap(ENV.state_index)(BitSequenceState(jnp.asarray(np.stack(states)),
                                                                    jnp.zeros(len(states), bool))))
    steps = table[index, np.array(actions)]
    return steps.reshape(len(ALL_WORDS), len(ALL_ORDERS), ENV.num_slots).sum(axis=-1)


ORDER_LOG_PF = _exact_order_log_pf(POLICY)
EXACT_LOG_P = np.log(np.exp(ORDER_LOG_PF).sum(axis=1))  # p(x) = sum over fill orders of P_F(order)


def test_the_brute_force_distribution_is_the_exact_dp_distribution_and_far_from_uniform():
    dp = exact_terminal_distribution(POLICY, ENV, bitseq_params(ENV, modes=[[0] * 6]))
    terminal_index = np.asarray(jax.vmap(ENV.state_index)(BitSequenceState(jnp.asarray(ALL_WORDS),
                                                                             jnp.ones(64, bool))))
    np.testing.assert_allclose(np.log(dp[terminal_index]), EXACT_LOG_P, atol=1e-5)
    assert np.isclose(np.exp(EXACT_LOG_P).sum(), 1.0)
    assert np.ptp(EXACT_LOG_P) > 2.0  # the policy is far from uniform over sequences
    assert np.ptp(ORDER_LOG_PF, axis=1).max() > 2.0  # and fill orders of one sequence differ


def test_trajectory_log_pf_is_the_exact_log_pf_of_each_fill_order():
    orders = jnp.broadcast_to(ALL_ORDERS, (len(ALL_WORDS),) + ALL_ORDERS.shape)
    log_pf = bitseq_eval.trajectory_log_pf(POLICY, ENV, jnp.asarray(ALL_WORDS), orders, chunk=64)
    np.testing.assert_allclose(log_pf, ORDER_LOG_PF, atol=1e-5)


def test_importance_sampling_over_all_fill_orders_is_exact():
    # With S = slots! distinct orders, 1/S sum_s P_F(tau_s) / P_B(tau_s | x) = sum over all orders = p(x).
    orders = jnp.broadcast_to(ALL_ORDERS, (len(ALL_WORDS),) + ALL_ORDERS.shape)
    log_pf = bitseq_eval.trajectory_log_pf(POLICY, ENV, jnp.asarray(ALL_WORDS), orders)
    log_pb = -math.log(math.factorial(ENV.num_slots))
    estimate = jax.nn.logsumexp(log_pf - log_pb, axis=1) - math.log(len(ALL_ORDERS))
    np.testing.assert_allclose(estimate, EXACT_LOG_P, atol=1e-5)


def test_fill_orders_are_uniform_permutations_independent_of_how_many_sequences_are_scored():
    orders = np.asarray(bitseq_eval.fill_orders(jax.random.PRNGKey(0), 2, 6000, ENV.num_slots))
    assert (np.sort(orders, axis=-1) == np.arange(ENV.num_slots)).all()
    counts = np.array([np.all(orders[0] == order, axis=-1).sum() for order in ALL_ORDERS])
    # 1000 expected per order; 5 standard deviations of a multinomial count is about 144.
    assert np.abs(counts - 1000).max() < 144, counts
    one = np.asarray(bitseq_eval.fill_orders(jax.random.PRNGKey(0), 1, 6000, ENV.num_slots))
    np.testing.assert_array_equal(one[0], orders[0])


@pytest.mark.parametrize("num_samples", [2000])
def test_sampled_estimate_matches_the_exact_log_p_within_four_standard_errors(num_samples):
    estimate = np.asarray(bitseq_eval._log_p_estimator(ENV, num_samples)(POLICY, jnp.asarray(ALL_WORDS),
                                                                        jax.random.PRNGKey(1)), np.float64)
    # Each backward sample contributes w = slots! * P_F(tau) with tau a uniform order, so p_hat = mean(w) has
    # standard deviation std(w) / sqrt(S), and log p_hat about that divided by p(x).
    weights = math.factorial(ENV.num_slots) * np.exp(ORDER_LOG_PF)
    log_standard_error = weights.std(axis=1) / np.sqrt(num_samples) / np.exp(EXACT_LOG_P)
    assert log_standard_error.max() > 0.01  # the check has teeth: single orders are poor estimates
    np.testing.assert_array_less(np.abs(estimate - EXACT_LOG_P), 4 * log_standard_error + 1e-4)
