"""Soft-RL GFlowNets: the reduction, the targets, prioritised replay, and learning."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fluxrl.envs.gflownet.base import uniform_log_pb
from fluxrl.envs.gflownet.bitseq import BitSequence, bitseq_params
from fluxrl.envs.gflownet.hypergrid import Hypergrid, hypergrid_params
from fluxrl.envs.gflownet.configs import BitSequenceConfig, HypergridConfig
from fluxrl.gflownet import metrics, soft_dqn, soft_rl
from fluxrl.gflownet.networks import MLPConfig, TransformerConfig
from fluxrl.gflownet.replay import per_sample
from fluxrl.gflownet.soft_dqn import SoftDQNConfig
from gfn_helpers import init_one, run_iterations, tv


def _soft_value_iteration(env, params):
    """(V [S], Q [S, A]) by soft value iteration over an enumerable env with an exit action, from the
    soft-RL reward of each transition; terminated states have V = 0."""
    states = env.all_states()
    num_states, num_actions = env.num_states, env.num_actions
    actions = jnp.arange(num_actions)
    children = jax.vmap(lambda s: jax.vmap(lambda a: env.step(s, a))(actions))(states)
    rewards = jax.vmap(lambda s, c: jax.vmap(lambda a, n: soft_rl.transition_log_reward(env, params, s, a, n))(
        actions, c))(states, children)
    # Invalid actions may step off the grid; their index is clipped and their Q masked out below.
    child_index = np.clip(np.asarray(jax.vmap(jax.vmap(env.state_index))(children)), 0, num_states - 1)
    child_terminal = np.asarray(jax.vmap(jax.vmap(env.is_terminal))(children))
    mask = np.asarray(jax.vmap(env.forward_mask)(states))
    rewards = np.asarray(rewards, np.float64)
    value = np.zeros(num_states)
    for _ in range(env.max_length + 1):
        q = rewards + np.where(child_terminal, 0.0, value[child_index])
        q = np.where(mask, q, -np.inf)
        value = np.logaddexp.reduce(q, axis=1)
    return value, q, mask


def test_soft_value_iteration_on_the_reduction_gives_log_z_and_the_target_distribution():
    env = Hypergrid(2, 4)
    params = hypergrid_params("standard", r0=0.1)
    value, q, mask = _soft_value_iteration(env, params)
    target = metrics.target_distribution(env, params)
    log_rewards = np.asarray(jax.vmap(env.log_reward, (None, 0))(params, env.terminal_states()), np.float64)
    start = int(env.state_index(env.reset(params, jax.random.PRNGKey(0))))
    assert value[start] == pytest.approx(np.log(np.exp(log_rewards).sum()), rel=1e-6)
    policy = np.where(mask, np.exp(q - value[:, None]), 0.0)
    np.testing.assert_allclose(policy.sum(axis=1), 1.0, rtol=1e-9)
    learned = metrics.terminal_distribution_from_probabilities(env, params, policy)
    np.testing.assert_allclose(learned, target, atol=1e-9)


def test_transition_rewards_sum_to_log_reward_plus_backward_log_probability():
    env = BitSequence(n=8, k=2, num_modes=2, mode_threshold=2)
    params = bitseq_params(env, modes=np.array([[0] * 8, [1, 1, 1, 1, 0, 0, 0, 0]], np.int8))
    state = env.reset(params, jax.random.PRNGKey(0))
    total, log_pb = 0.0, 0.0
    for choice in [5, 0, 14, 3]:  # four slots to fill: pick the choice-th valid action (mod their number)
        mask = np.asarray(env.forward_mask(state))
        action = int(np.flatnonzero(mask)[choice % mask.sum()])
        nxt = env.step(state, jnp.int32(action))
        total += float(soft_rl.transition_log_reward(env, params, state, jnp.int32(action), nxt))
        log_pb += float(uniform_log_pb(env, nxt))
        state = nxt
    assert bool(env.is_terminal(state))
    assert total == pytest.approx(float(env.log_reward(params, state)) + log_pb, rel=1e-6)


def test_munchausen_target_matches_a_hand_computed_case():
    # Q_target(s, .) = [1, 2, -inf (invalid)], tau = 2, alpha = 0.15, action 0:
    # log pi(0|s) = 0.5 - log(e^0.5 + e^1); bonus = 0.15 * clip(2 * log pi, l0, 0).
    q = jnp.array([[1.0, 2.0, -1e9]])
    mask = jnp.array([[True, True, False]])
    log_pi = 0.5 - np.log(np.exp(0.5) + np.exp(1.0))
    bonus = soft_rl.munchausen_bonus(q, mask, jnp.array([0]), 2.0, 0.15, -100.0)
    assert float(bonus[0]) == pytest.approx(0.15 * 2 * log_pi, rel=1e-6)
    clipped = soft_rl.munchausen_bonus(q, mask, jnp.array([0]), 2.0, 0.15, -0.1)
    assert float(clipped[0]) == pytest.approx(0.15 * -0.1, rel=1e-6)
    # Soft DQN part: y = r + tau * logsumexp(Q'/tau) = 0.3 + 2 * log(e^0.5 + e^1); terminal: y = r.
    target = soft_rl.soft_dqn_target(jnp.array([0.3, 0.3]), jnp.concatenate([q, q]),
                                     jnp.concatenate([mask, jnp.zeros_like(mask)]), jnp.array([False, True]), 2.0)
    np.testing.assert_allclose(target, [0.3 + 2 * np.log(np.exp(0.5) + np.exp(1.0)), 0.3], rtol=1e-6)


def test_a_dueling_head_holding_the_exact_soft_values_has_zero_td_error():
    # The soft-RL fixed point (V = log F, Q from soft value iteration) written into the dueling head must be a
    # fixed point of the soft DQN target: every transition's TD error is zero.
    env = Hypergrid(2, 4)
    params = hypergrid_params("standard", r0=0.1)
    value, q, mask = _soft_value_iteration(env, params)
    head = np.asarray(soft_rl.dueling_q(jnp.asarray(np.where(mask, q, 0.0), jnp.float32),
                                        jnp.asarray(value, jnp.float32), jnp.asarray(mask)))
    states = env.all_states()
    source, action = np.nonzero(mask)
    state = jax.tree.map(lambda x: x[source], states)
    child = jax.vmap(env.step)(state, jnp.asarray(action))
    reward = jax.vmap(lambda s, a, c: soft_rl.transition_log_reward(env, params, s, a, c))(state, action, child)
    child_index = np.asarray(jax.vmap(env.state_index)(child))
    done = jax.vmap(env.is_terminal)(child)
    target = soft_rl.soft_dqn_target(reward, jnp.asarray(head[child_index]), jnp.asarray(mask[child_index]), done,
                                     1.0)
    np.testing.assert_allclose(head[source, action], target, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("munchausen_alpha", [0.0, 0.15])
def test_soft_rl_gflownet_learns_the_target(munchausen_alpha):
    config = SoftDQNConfig(env=HypergridConfig(ndim=2, height=6, r0=0.1), network=MLPConfig(hidden=64),
                           munchausen_alpha=munchausen_alpha, replay_batch_size=128, per_capacity=5000)
    data, state = init_one(soft_dqn.ALGORITHM, config)
    before = tv(soft_dqn.ALGORITHM, config, data, state)
    state, _ = run_iterations(soft_dqn.ALGORITHM, config, data, state, 600)
    after = tv(soft_dqn.ALGORITHM, config, data, state)
    assert after < 0.5 * before and after < 0.1


def _tiny(**options):
    return SoftDQNConfig(env=HypergridConfig(ndim=2, height=5), network=MLPConfig(hidden=16), batch_size=4,
                         replay_batch_size=32, per_capacity=500, **options)


def _update(config, data, state):
    """One jitted update, traced afresh (so a monkeypatched function is the one used)."""
    return jax.jit(lambda s: soft_dqn.update(config, data, s))(state)


def _leaves_close(a, b):
    return all(np.allclose(x, y, rtol=1e-6, atol=1e-7) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_target_network_moves_by_polyak_towards_the_online_network_each_iteration():
    config = _tiny(target_polyak=0.25, target_every=1)
    data, state = init_one(soft_dqn.ALGORITHM, config)
    new_state, _ = _update(config, data, state)
    expected = jax.tree.map(lambda t, q: t + 0.25 * (q - t), state.target_params, new_state.q_params)
    assert _leaves_close(new_state.target_params, expected)
    assert not _leaves_close(new_state.target_params, new_state.q_params)


def test_target_network_is_a_hard_copy_every_target_every_iterations():
    config = _tiny(target_polyak=1.0, target_every=3)
    data, state = init_one(soft_dqn.ALGORITHM, config)
    first_target = state.target_params
    for iteration in (1, 2, 3):
        state, _ = _update(config, data, state)
        if iteration < 3:
            assert _leaves_close(state.target_params, first_target)
            assert not _leaves_close(state.q_params, first_target)
    assert _leaves_close(state.target_params, state.q_params)


def test_importance_sampling_exponent_is_annealed_linearly(monkeypatch):
    config = _tiny(per_beta=0.2, per_beta_final=0.8, per_beta_iterations=4)
    data, state = init_one(soft_dqn.ALGORITHM, config)
    used = []

    def recording_sample(buffer, key, batch_size, alpha, beta):
        jax.debug.callback(lambda value: used.append(float(value)), beta)
        return per_sample(buffer, key, batch_size, alpha, beta)

    monkeypatch.setattr(soft_dqn, "per_sample", recording_sample)
    step = jax.jit(lambda s: soft_dqn.update(config, data, s))
    for iteration in (0, 2, 4, 9):
        jax.block_until_ready(step(state._replace(iteration=jnp.int32(iteration))))
    np.testing.assert_allclose(used, [0.2, 0.5, 0.8, 0.8], rtol=1e-6)


def _loss_with_weights(monkeypatch, config, data, state, reweight):
    """The update's loss when the replayed batch's importance weights are changed by reweight(weights, batch)."""
    def reweighted_sample(buffer, key, batch_size, alpha, beta):
        batch, indices, weights = per_sample(buffer, key, batch_size, alpha, beta)
        return batch, indices, reweight(weights, batch)

    monkeypatch.setattr(soft_dqn, "per_sample", reweighted_sample)
    new_state, metrics = _update(config, data, state)
    return float(metrics["loss"]), new_state


def test_importance_weights_scale_the_loss(monkeypatch):
    config = _tiny(per_beta=1.0)
    data, state = init_one(soft_dqn.ALGORITHM, config)
    state, _ = _update(config, data, state)  # something in the buffer with distinct priorities
    base, _ = _loss_with_weights(monkeypatch, config, data, state, lambda w, b: w)
    doubled, _ = _loss_with_weights(monkeypatch, config, data, state, lambda w, b: 2 * w)
    zero, _ = _loss_with_weights(monkeypatch, config, data, state, lambda w, b: 0 * w)
    assert base > 0 and doubled == pytest.approx(2 * base, rel=1e-5) and zero == 0.0


def test_leaf_coefficient_weights_only_transitions_into_terminal_objects(monkeypatch):
    data, state = init_one(soft_dqn.ALGORITHM, _tiny())
    state, _ = _update(_tiny(), data, state)
    terminal = lambda w, batch: w * batch.done
    inner = lambda w, batch: w * ~batch.done
    losses = {(c, name): _loss_with_weights(monkeypatch, _tiny(leaf_coefficient=c), data, state, keep)[0]
              for c in (1.0, 3.0) for name, keep in (("terminal", terminal), ("inner", inner))}
    assert losses[1.0, "terminal"] > 0 and losses[1.0, "inner"] > 0
    assert losses[3.0, "terminal"] == pytest.approx(3 * losses[1.0, "terminal"], rel=1e-5)
    assert losses[3.0, "inner"] == pytest.approx(losses[1.0, "inner"], rel=1e-6)


@pytest.mark.parametrize("env, network, l0, expected", [
    (HypergridConfig(ndim=2, height=4), MLPConfig(hidden=8), None, -100.0),
    (BitSequenceConfig(n=8, k=2, num_modes=2, test_set_size=4), TransformerConfig(8, 2, 1), None, -25.0),
    (HypergridConfig(ndim=2, height=4), MLPConfig(hidden=8), -7.0, -7.0),
])
def test_munchausen_clip_defaults_per_environment(monkeypatch, env, network, l0, expected):
    config = SoftDQNConfig(env=env, network=network, l0=l0, replay_batch_size=8, per_capacity=64)
    used, original = [], soft_rl.munchausen_bonus

    def recording_bonus(q, mask, action, tau, alpha, clip):
        used.append(clip)
        return original(q, mask, action, tau, alpha, clip)

    monkeypatch.setattr(soft_rl, "munchausen_bonus", recording_bonus)
    data = soft_dqn.make_data(config)
    state = jax.eval_shape(lambda: soft_dqn.init(config, data, jax.random.PRNGKey(0)))
    jax.eval_shape(lambda s: soft_dqn.update(config, data, s), state)  # traced only: the clip is static
    assert used == [expected]


def test_soft_dqn_has_no_munchausen_term(monkeypatch):
    config = _tiny(munchausen_alpha=0.0)
    monkeypatch.setattr(soft_rl, "munchausen_bonus", lambda *args: pytest.fail("Munchausen term in soft DQN"))
    data = soft_dqn.make_data(config)
    state = jax.eval_shape(lambda: soft_dqn.init(config, data, jax.random.PRNGKey(0)))
    jax.eval_shape(lambda s: soft_dqn.update(config, data, s), state)
    assert soft_dqn.tau(config) == 1.0
