"""Exploration strategies: reward formulas, off-policy training of the main model, replay, and learning."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxrl.core.config import ConfigError
from fluxrl.envs.gflownet.configs import HypergridConfig
from fluxrl.gflownet import balance, lggfn, sagfn, teacher
from fluxrl.gflownet.balance import BalanceConfig
from fluxrl.gflownet.losses import balance_loss
from fluxrl.gflownet.networks import MLPConfig, policy_of_params
from fluxrl.gflownet.replay import replay_add, replay_init, replay_sample
from fluxrl.gflownet.sampler import sample_trajectories, score_trajectories
from fluxrl.gflownet.trajectory_replay import ReplayConfig
from gfn_helpers import init_one, run_iterations, tv

STRATEGIES = {"lggfn": lggfn.LGGFNConfig(), "teacher": teacher.TeacherConfig(), "sagfn": sagfn.SAGFNConfig(),
              "replay": ReplayConfig()}


def test_lggfn_reward_is_reward_plus_lambda_times_loss():
    # R = 0.5, loss = 2, lambda = 0.3: R_aux = 0.5 + 0.6 = 1.1
    value = lggfn.lggfn_log_reward(jnp.float32(2.0), jnp.log(jnp.float32(0.5)), 0.3)
    assert float(value) == pytest.approx(math.log(1.1), rel=1e-6)


def test_lggfn_reward_with_zero_loss_is_the_true_reward():
    value = lggfn.lggfn_log_reward(jnp.float32(0.0), jnp.float32(-4.0), 1.0)
    assert float(value) == pytest.approx(-4.0)


def test_teacher_reward_multiplies_reward_by_loss_to_the_lambda():
    # log R_aux = log 0.5 + 2 * log 3
    value = teacher.teacher_log_reward(jnp.float32(3.0), jnp.log(jnp.float32(0.5)), 2.0)
    assert float(value) == pytest.approx(math.log(0.5 * 9.0), rel=1e-6)
    floored = teacher.teacher_log_reward(jnp.float32(0.0), jnp.float32(0.0), 1.0)
    assert float(floored) == pytest.approx(math.log(1e-12), rel=1e-6)


def test_sagfn_reward_combines_reward_and_novelty():
    # beta_sn * log(R^beta_e + novelty^beta_i) with R = 0.25, novelty = 0.5, betas (2, 1, 0.5)
    value = sagfn.sagfn_log_reward(jnp.float32(0.5), jnp.log(jnp.float32(0.25)), 2.0, 1.0, 0.5)
    assert float(value) == pytest.approx(0.5 * math.log(0.25**2 + 0.5), rel=1e-6)


@settings(max_examples=30, deadline=None)
@given(loss=st.floats(0.0, 1e4), log_reward=st.floats(-20.0, 5.0), lam=st.floats(1e-3, 10.0))
def test_lggfn_reward_is_at_least_the_true_reward(loss, log_reward, lam):
    value = float(lggfn.lggfn_log_reward(jnp.float32(loss), jnp.float32(log_reward), lam))
    expected = math.log(math.exp(log_reward) + lam * loss)
    assert value >= np.float32(log_reward) - 1e-5
    assert value == pytest.approx(expected, rel=1e-4, abs=1e-4)


def test_rnd_novelty_falls_where_the_predictor_trains():
    rnd = sagfn.rnd_init(6, 8, 32, jax.random.PRNGKey(0), lr=1e-2)
    seen, unseen = jnp.eye(6)[:3], jnp.eye(6)[3:]
    before = sagfn.rnd_novelty(rnd, seen)
    for _ in range(200):
        rnd = sagfn.rnd_update(rnd, seen, 1e-2)
    assert float(jnp.max(sagfn.rnd_novelty(rnd, seen))) < 0.1 * float(jnp.min(before))
    assert float(jnp.min(sagfn.rnd_novelty(rnd, unseen))) > float(jnp.max(sagfn.rnd_novelty(rnd, seen)))


# The strategies share the auxiliary round (`exploration.auxiliary_round`): all with -m slow (by default an LGGFN run
# goes through the round in tests/test_metric_names.py and tests/test_cli.py).
@pytest.mark.parametrize("loss, explore", [
    ("tb", "lggfn"),
    *(pytest.param(loss, explore, marks=pytest.mark.slow)
      for loss, explore in [("subtb", "sagfn"), ("tb", "teacher"), ("tb", "sagfn"), ("subtb", "lggfn"),
                            ("subtb", "teacher")]),
])
def test_main_model_trains_on_auxiliary_trajectories_with_its_own_log_probs(loss, explore):
    config = BalanceConfig(env=HypergridConfig(ndim=2, height=6), network=MLPConfig(hidden=32), batch_size=8,
                           loss=loss, explore=STRATEGIES[explore])
    data, state = init_one(balance.ALGORITHM, config, seed=1)
    new_state, _ = run_iterations(balance.ALGORITHM, config, data, state, 1)
    env, network = config.env.build()[0], config.network
    aux = state.exploration.aux if explore == "sagfn" else state.exploration

    # The same draws as `update`, then plain autodiff of the main loss on the mixed batch, every term re-scored
    # by the main model.
    _, sample_key, other_key = jax.random.split(state.key, 3)
    main = policy_of_params(network, env, state.model.policy)
    own, _ = sample_trajectories(main, env, data.env_params, sample_key, 4, False)
    samples, aux_terms = sample_trajectories(policy_of_params(network, env, aux.policy), env, data.env_params,
                                             other_key, 8, False)
    samples = jax.tree.map(lambda x: x[:4], samples)
    mixed = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), own, samples)

    def main_loss(params, terms_of=None):
        terms = score_trajectories(policy_of_params(network, env, params), env, mixed, False)
        if terms_of is not None:  # the wrong way: reuse the sampler's log-probabilities on the auxiliary half
            terms = jax.tree.map(lambda t, a: t.at[4:].set(a[:4]), terms, terms_of)
        return jnp.mean(balance_loss(loss, terms, mixed.log_reward, mixed.length, state.model.log_z,
                                     config.subtb_lambda))

    expected = jax.grad(main_loss)(state.model.policy)
    # Adam's first moment after one step from zero is (1 - b1) * gradient.
    adam_state = new_state.model.opt_state[0][0]
    actual = jax.tree.map(lambda m: m / 0.1, adam_state.mu)
    for a, b in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-5)
    wrong = jax.grad(lambda p: main_loss(p, aux_terms))(state.model.policy)
    difference = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(wrong),
                                                                     jax.tree.leaves(expected)))
    assert difference > 1e-3


def test_replay_buffer_keeps_the_latest_trajectories_and_samples_only_stored_ones():
    config = BalanceConfig(env=HypergridConfig(ndim=2, height=5), network=MLPConfig(hidden=16), batch_size=4)
    data, state = init_one(balance.ALGORITHM, config)
    policy = balance.policy_of(config, state)
    env = config.env.build()[0]
    batches = [sample_trajectories(policy, env, data.env_params, jax.random.PRNGKey(i), 4, False)[0]
               for i in range(3)]
    buffer = replay_init(batches[0], capacity=6)
    for batch in batches:
        buffer = replay_add(buffer, batch)
    assert int(buffer.size) == 6 and int(buffer.position) == 0
    # Capacity 6 after 12 writes: slots 0-1 hold the second batch's last two, slots 2-5 the third batch.
    expected = np.concatenate([np.asarray(batches[1].actions[2:]), np.asarray(batches[2].actions)])
    stored = np.asarray(buffer.items.actions)
    np.testing.assert_array_equal(stored, expected)
    drawn = replay_sample(buffer, jax.random.PRNGKey(5), 64)
    stored_rows = {tuple(row) for row in stored}
    assert all(tuple(row) in stored_rows for row in np.asarray(drawn.actions))


def test_auxiliary_fraction_must_leave_an_auxiliary_share():
    with pytest.raises(ConfigError, match="aux_fraction"):
        BalanceConfig(explore=lggfn.LGGFNConfig(aux_fraction=0.01), batch_size=4)
    with pytest.raises(ConfigError, match="aux_fraction"):
        lggfn.LGGFNConfig(aux_fraction=1.0)


# LGGFN by default; the baselines' learning with -m slow (the suite's five minutes).
@pytest.mark.parametrize("explore", [pytest.param("replay", marks=pytest.mark.slow), "lggfn",
                                     pytest.param("sagfn", marks=pytest.mark.slow)])
def test_exploring_gflownet_learns_the_target(explore):
    config = BalanceConfig(env=HypergridConfig(ndim=2, height=8, r0=0.1), network=MLPConfig(hidden=64),
                           batch_size=16, explore=STRATEGIES[explore])
    data, state = init_one(balance.ALGORITHM, config)
    before = tv(balance.ALGORITHM, config, data, state)
    state, _ = run_iterations(balance.ALGORITHM, config, data, state, 400)
    after = tv(balance.ALGORITHM, config, data, state)
    assert after < 0.5 * before and after < 0.15
