"""Soft DQN's options of the official hypergrid protocol (Tiapkin et al. 2024): each does what it says."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fluxrl.envs.gflownet.configs import HypergridConfig
from fluxrl.gflownet import soft_dqn
from fluxrl.gflownet.networks import MLPConfig, policy_of_params
from gfn_helpers import init_one, run_iterations

BASE = soft_dqn.SoftDQNConfig(env=HypergridConfig(ndim=2, height=5), network=MLPConfig(hidden=16), batch_size=4,
                              replay_batch_size=16, per_capacity=256)


def _changed(a, b) -> bool:
    return any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_plain_head_q_is_the_masked_forward_logits_and_dueling_is_not():
    config = dataclasses.replace(BASE, q_head="plain")
    data, state = init_one(soft_dqn.ALGORITHM, config)
    env, network = soft_dqn._network(config)
    net = policy_of_params(network, env, state.q_params)
    states = env.all_states()
    logits = jax.vmap(lambda s: net(env.obs_hot_indices(s))[0])(states)
    mask = np.asarray(jax.vmap(env.forward_mask)(states))
    plain, _, value = soft_dqn.q_values(config, net, env, states)
    np.testing.assert_allclose(np.asarray(plain)[mask], np.asarray(logits)[mask], rtol=1e-6)
    tau = soft_dqn.tau(config)  # the soft value at M-DQN's temperature
    np.testing.assert_allclose(value, tau * jax.nn.logsumexp(jnp.where(mask, logits / tau, -jnp.inf), axis=-1),
                               rtol=1e-5)
    dueling, _, _ = soft_dqn.q_values(BASE, net, env, states)
    assert not np.allclose(np.asarray(dueling)[mask], np.asarray(logits)[mask])


def test_nothing_but_the_buffer_changes_before_learning_starts():
    config = dataclasses.replace(BASE, learning_starts=3)
    data, start = init_one(soft_dqn.ALGORITHM, config)
    state, metrics = run_iterations(soft_dqn.ALGORITHM, config, data, start, 3)
    assert not _changed(state.q_params, start.q_params) and not _changed(state.target_params, start.target_params)
    assert int(state.replay.size) > 0 and np.all(np.asarray(metrics["loss"]) == 0.0)
    after, _ = run_iterations(soft_dqn.ALGORITHM, config, data, state, 1)
    assert _changed(after.q_params, state.q_params) and _changed(after.target_params, state.target_params)


def test_td_insertion_stores_each_transitions_own_priority_and_max_insertion_the_largest_seen():
    for insert in ("max", "td"):
        config = dataclasses.replace(BASE, per_insert=insert, per_priority="huber", learning_starts=10)
        data, state = init_one(soft_dqn.ALGORITHM, config)
        state, _ = run_iterations(soft_dqn.ALGORITHM, config, data, state, 1)
        stored = np.asarray(state.replay.priorities)[:int(state.replay.size)]
        if insert == "max":
            np.testing.assert_array_equal(stored, 1.0)  # the initial maximum: no priority was updated yet
        else:
            assert len(np.unique(stored)) > 1 and np.all(stored > 0)


def test_huber_priority_is_the_leaf_weighted_huber_loss():
    config = dataclasses.replace(BASE, per_priority="huber", leaf_coefficient=2.0)
    priority = soft_dqn.priority(config, jnp.array([0.5, -3.0, 3.0]), jnp.array([False, False, True]))
    np.testing.assert_allclose(priority, [0.125, 2.5, 5.0])
    np.testing.assert_allclose(soft_dqn.priority(BASE, jnp.array([0.5, -3.0]), jnp.array([False, True])), [0.5, 3.0])


@pytest.mark.parametrize("beta, weighted_is_smaller", [(1.0, True), (0.0, False)])
def test_importance_weights_shrink_the_loss_only_when_beta_is_positive(beta, weighted_is_smaller):
    losses = {}
    for weights in (True, False):
        config = dataclasses.replace(BASE, per_insert="td", per_importance_weights=weights, per_beta=beta,
                                     per_beta_final=beta)
        data, state = init_one(soft_dqn.ALGORITHM, config)
        _, metrics = run_iterations(soft_dqn.ALGORITHM, config, data, state, 2)
        losses[weights] = float(metrics["loss"][-1])
    if weighted_is_smaller:
        assert losses[True] < losses[False]
    else:
        assert losses[True] == pytest.approx(losses[False], rel=1e-6)


# The official bit-sequence settings of the balance losses (bitseq/run.py:476-479), tested on a small grid.
def test_a_summed_log_z_vector_moves_log_z_size_times_as_far_per_adam_step():
    from fluxrl.gflownet import balance

    moves = {}
    for size in (1, 4):
        config = balance.BalanceConfig(env=HypergridConfig(ndim=2, height=4), network=MLPConfig(hidden=16),
                                       batch_size=4, log_z_lr=0.01, log_z_size=size)
        data, state = init_one(balance.ALGORITHM, config)
        after, _ = run_iterations(balance.ALGORITHM, config, data, state, 1)
        assert after.model.log_z.shape == (() if size == 1 else (size,))
        moves[size] = float(jnp.sum(after.model.log_z) - jnp.sum(state.model.log_z))
    # Adam's first step moves every element by lr in the direction of its (shared) gradient.
    assert abs(moves[1]) == pytest.approx(0.01, rel=1e-3) and moves[4] == pytest.approx(4 * moves[1], rel=1e-3)


def test_weight_decay_pulls_parameters_towards_zero_without_a_loss_gradient():
    from fluxrl.gflownet.model import optimizer

    params = jnp.array([2.0, -3.0])
    updates, _ = optimizer(0.1, 1e-5).update(jnp.zeros(2), optimizer(0.1, 1e-5).init(params), params)
    np.testing.assert_allclose(updates, [-0.1, 0.1], rtol=1e-3)
    no_decay, _ = optimizer(0.1, 0.0).update(jnp.zeros(2), optimizer(0.1, 0.0).init(params), params)
    np.testing.assert_array_equal(no_decay, 0.0)
