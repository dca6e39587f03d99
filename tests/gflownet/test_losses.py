"""TB, DB and SubTB against hand-computed values and the exact solution of a hypergrid."""

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxrl.envs.gflownet.hypergrid import Hypergrid, hypergrid_params
from fluxrl.gflownet import losses
from fluxrl.gflownet.metrics import target_distribution, terminal_distribution_from_probabilities


def exact_hypergrid_solution(env, params):
    """(P_F [S, A], log F [S], n_parents [S]) of the GFlowNet that is exact for a uniform P_B."""
    import jax

    coords = np.asarray(env.all_states().coords)
    rewards = np.exp(np.asarray(jax.vmap(env.log_reward, (None, 0))(params, env.terminal_states())), dtype=np.float64)
    strides = env.height ** np.arange(env.ndim - 1, -1, -1)
    parents = (coords > 0).sum(axis=1)
    flow = np.zeros(env.num_states)
    forward = np.zeros((env.num_states, env.num_actions))
    for s in np.argsort(-coords.sum(axis=1), kind="stable"):  # children before parents
        flow[s] = rewards[s]
        for d in range(env.ndim):
            if coords[s, d] < env.height - 1:
                child = s + strides[d]
                flow[s] += flow[child] / parents[child]
    for s in range(env.num_states):
        forward[s, env.exit_action] = rewards[s] / flow[s]
        for d in range(env.ndim):
            if coords[s, d] < env.height - 1:
                child = s + strides[d]
                forward[s, d] = flow[child] / parents[child] / flow[s]
    return forward, np.log(flow), parents, np.log(rewards)


def test_dynamic_programming_of_the_exact_policy_gives_the_target():
    env, params = Hypergrid(ndim=3, height=5), hypergrid_params("hard")
    forward, _, _, _ = exact_hypergrid_solution(env, params)
    p = terminal_distribution_from_probabilities(env, params, forward)
    np.testing.assert_allclose(p, target_distribution(env, params), atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), lam=st.floats(0.1, 2.0))
def test_all_losses_are_zero_at_the_exact_solution(seed, lam):
    env, params = Hypergrid(ndim=2, height=6), hypergrid_params("standard")
    forward, log_flow_table, parents, log_rewards = exact_hypergrid_solution(env, params)
    rng = np.random.default_rng(seed)
    strides = env.height ** np.arange(env.ndim - 1, -1, -1)
    rows = env.max_length + 1
    log_pf, log_pb, log_flow = np.zeros(rows), np.zeros(rows), np.zeros(rows)
    s, t = 0, 0
    while True:
        action = rng.choice(env.num_actions, p=forward[s])
        log_pf[t], log_flow[t] = np.log(forward[s, action]), log_flow_table[s]
        if action == env.exit_action:
            break
        s += strides[action]
        t += 1
        log_pb[t] = -np.log(parents[s])
    length = t + 1
    args = [jnp.asarray(x, jnp.float32)[None] for x in (log_pf, log_pb, log_flow)]
    reward, length = jnp.asarray([log_rewards[s]], jnp.float32), jnp.asarray([length])
    assert losses.trajectory_balance(args[0], args[1], reward, length, log_flow_table[0])[0] < 1e-8
    assert losses.detailed_balance(*args, reward, length)[0] < 1e-8
    assert losses.subtrajectory_balance(*args, reward, length, lam)[0] < 1e-8


def test_losses_match_hand_computed_values_on_a_two_step_trajectory():
    # s0 -> s1 -> x (terminated); rows: s0, s1, x, padding
    log_pf = jnp.array([[-0.5, -1.0, 0.0, 0.0]])
    log_pb = jnp.array([[0.0, -0.7, -0.2, 0.0]])
    log_flow = jnp.array([[2.0, 1.5, 9.0, 9.0]])  # the flow in row 2 is replaced by log R
    log_reward, length, log_z = jnp.array([0.3]), jnp.array([2]), 1.2
    tb = (1.2 - 0.5 - 1.0 - 0.3 + 0.7 + 0.2) ** 2
    assert np.isclose(losses.trajectory_balance(log_pf, log_pb, log_reward, length, log_z)[0], tb)
    first = 2.0 - 0.5 - 1.5 + 0.7
    second = 1.5 - 1.0 - 0.3 + 0.2
    assert np.isclose(losses.detailed_balance(log_pf, log_pb, log_flow, log_reward, length)[0],
                      (first**2 + second**2) / 2)
    whole = 2.0 - 0.5 - 1.0 + 0.7 + 0.2 - 0.3
    lam = 0.5
    expected = (lam * first**2 + lam * second**2 + lam**2 * whole**2) / (2 * lam + lam**2)
    assert np.isclose(losses.subtrajectory_balance(log_pf, log_pb, log_flow, log_reward, length, lam)[0], expected)


@pytest.mark.parametrize("lam", [0.9, 1.9])
def test_subtb_with_one_transition_equals_detailed_balance(lam):
    log_pf, log_pb = jnp.array([[-0.3, 0.0]]), jnp.array([[0.0, -0.1]])
    log_flow, log_reward, length = jnp.array([[0.4, 5.0]]), jnp.array([-0.2]), jnp.array([1])
    db = losses.detailed_balance(log_pf, log_pb, log_flow, log_reward, length)
    subtb = losses.subtrajectory_balance(log_pf, log_pb, log_flow, log_reward, length, lam)
    np.testing.assert_allclose(subtb, db, rtol=1e-6)
