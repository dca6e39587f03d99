"""Gaussian PPO and the on-policy mechanics: GAE, running normalisation, the squashed Gaussian, the clipped loss,
rollouts with time limits and terminations, learning a toy task, determinism."""

import csv
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fluxrl.envs.control import registry
from fluxrl.core import runner
from fluxrl.core.config import ConfigError
from fluxrl.onpolicy import normalization, objectives, ppo, rollout
from toy_env import PointToTarget

TOY = "test-point"
# Small enough to compile and learn in seconds on two cores.
CONFIG = ppo.PPOConfig(env=TOY, num_envs=16, num_steps=50, epochs=4, minibatches=4, lr=1e-3, gamma=0.95,
                       actor_hidden=(32, 32), critic_hidden=(32, 32))
# Measured with the defaults, seeds 0-1: about -950 over iterations 1-5, -190 over iterations 36-40.
PENDULUM_ITERATIONS, PENDULUM_FLOOR = 40, -400.0


@pytest.fixture(autouse=True)
def toy_envs(monkeypatch):
    """The toy environment, registered for the test only."""
    monkeypatch.setitem(registry.ENVS, TOY, PointToTarget)


def test_gae_matches_a_hand_computed_case_with_a_truncation_and_a_termination():
    reward = jnp.array([1.0, 2.0, 3.0, 4.0, 5.0])[:, None]
    value = jnp.array([10.0, 20.0, 30.0, 40.0, 50.0])[:, None]
    # Step 1 hits the time limit: its next value is V(final observation) = 7, not V(s_2) = 30. Step 2 terminates:
    # its next value (99) must be ignored. Step 4 is the rollout's last: it bootstraps from 60.
    next_value = jnp.array([20.0, 7.0, 99.0, 50.0, 60.0])[:, None]
    terminated = jnp.array([False, False, True, False, False])[:, None]
    truncated = jnp.array([False, True, False, False, False])[:, None]
    advantage, target = objectives.gae(reward, value, next_value, terminated, truncated, gamma=0.5, gae_lambda=0.5)
    # deltas: 1 + 0.5*20 - 10 = 1; 2 + 0.5*7 - 20 = -14.5; 3 - 30 = -27; 4 + 0.5*50 - 40 = -11; 5 + 0.5*60 - 50 = -15
    # A_4 = -15; A_3 = -11 + 0.25 A_4 = -14.75; A_2 = -27 and A_1 = -14.5 (the episode ended: nothing flows back
    # across the reset); A_0 = 1 + 0.25 A_1 = -2.625.
    np.testing.assert_allclose(advantage[:, 0], [-2.625, -14.5, -27.0, -14.75, -15.0])
    np.testing.assert_allclose(target[:, 0], [7.375, 5.5, 3.0, 25.25, 35.0])


def test_gae_time_limit_rules_terminate_and_zero():
    """terminate: a truncated step bootstraps nothing (the official grid world); zero: its delta and advantage are
    0 and its value loss is masked (the official Playground code)."""
    reward = jnp.array([1.0, 2.0, 3.0])[:, None]
    value = jnp.array([10.0, 20.0, 30.0])[:, None]
    next_value = jnp.array([20.0, 7.0, 40.0])[:, None]
    terminated = jnp.zeros((3, 1), bool)
    truncated = jnp.array([False, True, False])[:, None]
    advantage, _ = objectives.gae(reward, value, next_value, terminated, truncated, 0.5, 0.5, "terminate")
    # deltas 1 + 10 - 10 = 1, 2 - 20 = -18 (no bootstrap), 3 + 20 - 30 = -7; A_0 = 1 + 0.25 * -18 = -3.5
    np.testing.assert_allclose(advantage[:, 0], [-3.5, -18.0, -7.0])
    advantage, _ = objectives.gae(reward, value, next_value, terminated, truncated, 0.5, 0.5, "zero")
    # the truncated step's delta is 0; A_0 = delta_0 + 0.25 * 0 = 1
    np.testing.assert_allclose(advantage[:, 0], [1.0, 0.0, -7.0])
    np.testing.assert_allclose(objectives.value_mask(truncated, "zero")[:, 0], [1.0, 0.0, 1.0])
    np.testing.assert_allclose(objectives.value_mask(truncated, "terminate")[:, 0], [1.0, 1.0, 1.0])


def test_advantages_recomputed_by_the_rollout_critic_equal_the_rollout_ones():
    """With one chunk per environment, the per-minibatch recomputation (gae_chunk) with the critic that valued the
    rollout gives the advantages computed once."""
    config = dataclasses.replace(CONFIG, gae_chunk=CONFIG.num_steps, minibatches=4)
    state = ppo.init(config, None, jax.random.PRNGKey(0))
    value = lambda observation: rollout.state_value(state.critic, observation)
    _, transition, _, _ = rollout.collect(rollout.make_env(TOY), None, state.env, None, ppo.sample(state.actor), value,
                                          jax.random.PRNGKey(1), config.num_steps)
    once = rollout.advantages(config, None, transition)
    again = rollout.advantages(config, state.critic, transition)
    np.testing.assert_allclose(again.advantage, once.advantage, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(again.target, once.target, rtol=1e-5, atol=1e-5)


def test_target_kl_stops_the_epochs_and_per_network_clipping_bounds_each_gradient():
    config = dataclasses.replace(CONFIG, target_kl=1e-12)  # any step moves the policy further than this
    _, metrics = jax.jit(lambda state: ppo.update(config, None, state))(ppo.init(config, None, jax.random.PRNGKey(0)))
    assert float(metrics["epochs_run"]) == 1 and CONFIG.epochs > 1
    clip = objectives.clip_each_by_norm(1.0)
    grads = ({"w": jnp.array([3.0, 4.0])}, {"w": jnp.array([0.3, 0.4])})
    clipped, _ = clip.update(grads, clip.init(grads))
    np.testing.assert_allclose(clipped[0]["w"], [0.6, 0.8], rtol=1e-6)  # norm 5 -> 1
    np.testing.assert_allclose(clipped[1]["w"], [0.3, 0.4], rtol=1e-6)  # norm 0.5: unchanged


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 20), min_size=1, max_size=5), st.integers(0, 2 ** 31 - 1))
def test_running_statistics_equal_numpy_mean_and_variance_of_everything_seen(batch_sizes, seed):
    rng = np.random.default_rng(seed)
    batches = [rng.normal(3.0, 2.0, size=(n, 3)).astype(np.float32) * [1.0, 10.0, 0.1] for n in batch_sizes]
    stats = normalization.init_stats(3)
    np.testing.assert_allclose(normalization.normalize(stats, jnp.asarray(batches[0])), batches[0], rtol=1e-6)
    for batch in batches:
        stats = normalization.update_stats(stats, jnp.asarray(batch))
    everything = np.concatenate(batches).astype(np.float64)
    assert float(stats.count) == len(everything)
    np.testing.assert_allclose(stats.mean, everything.mean(axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(normalization.variance(stats), everything.var(axis=0), rtol=1e-4, atol=1e-6)


MEAN, STD = jnp.array([0.3]), jnp.array([0.8])


def test_squashed_log_prob_is_the_change_of_variables_density_and_integrates_to_one():
    actions = jnp.linspace(-0.9999, 0.9999, 20001)
    pre_tanh = jnp.arctanh(actions)[:, None]
    log_density = ppo.squashed_log_prob(MEAN, STD, pre_tanh)
    gaussian = -0.5 * ((pre_tanh[:, 0] - 0.3) / 0.8) ** 2 - np.log(0.8 * np.sqrt(2 * np.pi))
    np.testing.assert_allclose(log_density, gaussian - np.log(1 - actions ** 2), rtol=1e-4, atol=1e-4)
    assert float(jnp.trapezoid(jnp.exp(log_density), actions)) == pytest.approx(1.0, abs=1e-3)


def test_squashed_log_prob_matches_a_histogram_of_sampled_actions():
    samples = jnp.tanh(MEAN + STD * jax.random.normal(jax.random.PRNGKey(0), (200_000, 1)))[:, 0]
    counts, edges = np.histogram(np.asarray(samples), bins=20, range=(-0.95, 0.95))
    centres = (edges[:-1] + edges[1:]) / 2
    density = np.exp(ppo.squashed_log_prob(MEAN, STD, jnp.arctanh(jnp.asarray(centres))[:, None]))
    np.testing.assert_allclose(counts / (len(samples) * (edges[1] - edges[0])), density, rtol=0.03)


def test_entropy_estimate_averages_to_minus_the_mean_log_prob_of_samples():
    mean, std = jnp.array([0.3, -1.0]), jnp.array([0.8, 0.4])
    keys = jax.random.split(jax.random.PRNGKey(1), 200_000)
    estimate = jnp.mean(jax.vmap(lambda key: ppo.squashed_entropy(mean, std, key))(keys))
    pre_tanh = mean + std * jax.random.normal(jax.random.PRNGKey(2), (200_000, 2))
    monte_carlo = -jnp.mean(ppo.squashed_log_prob(mean, std, pre_tanh))
    assert float(estimate) == pytest.approx(float(monte_carlo), abs=0.01)


@settings(max_examples=50, deadline=None)
@given(st.floats(0.25, 3.0), st.floats(0.1, 5.0), st.booleans())
def test_clipped_loss_gradient_vanishes_only_beyond_the_clip_in_the_advantage_direction(ratio, size, positive):
    eps = 0.2
    assume(min(abs(ratio - 1 - eps), abs(ratio - 1 + eps)) > 1e-3)  # a tie at the clip has no one gradient
    advantage = jnp.array([size if positive else -size])
    grad = float(jax.grad(lambda lr: objectives.clipped_surrogate(lr, advantage, eps)[0])(jnp.log(jnp.array([ratio])))[0])
    beyond = ratio > 1 + eps if positive else ratio < 1 - eps
    if beyond:  # the objective already gained all the clip allows: no push further
        assert grad == 0.0
    else:  # d(-r A)/d log r = -r A: pushes the ratio up for A > 0, down for A < 0
        assert grad == pytest.approx(-ratio * float(advantage[0]), rel=1e-5)


def test_rollout_bootstraps_at_time_limits_resets_and_keeps_the_last_return_when_no_episode_ends():
    env = PointToTarget(time_limit=3)
    carry = rollout.reset_envs(env, None, jax.random.PRNGKey(0), 2)
    stats = normalization.update_stats(normalization.init_stats(2), jnp.array([[0.0, 0.0], [2.0, 4.0]]))

    def sample(observation, key):
        action = jnp.full((observation.shape[0], 1), 0.5)
        return action, action, jnp.zeros(observation.shape[0])

    value = lambda obs: obs[..., 0] + 2.0 * obs[..., 1]  # any function of the normalised observation
    collect = jax.jit(lambda carry, steps: rollout.collect(env, None, carry, stats, sample, value,
                                                           jax.random.PRNGKey(1), steps), static_argnums=1)
    after, transition, raw, metrics = collect(carry, 4)
    assert transition.truncated[:, 0].tolist() == [False, False, True, False]
    assert not transition.terminated.any()
    np.testing.assert_array_equal(raw[0], carry.observation)
    np.testing.assert_allclose(transition.observation, normalization.normalize(stats, raw), rtol=1e-6)
    # Within an episode the final observation is the next observation; at the time limit it is not (a reset).
    np.testing.assert_allclose(transition.next_value[:2], transition.value[1:3], rtol=1e-5)
    assert not np.allclose(transition.next_value[2], transition.value[3])
    position, target = raw[2, :, 0] + 0.1, raw[2, :, 1]  # the step at the limit moved by 0.2 * 0.5
    final = normalization.normalize(stats, jnp.stack([position, target], -1))
    np.testing.assert_allclose(transition.next_value[2], value(final), rtol=1e-5)
    assert int(metrics["episodes_ended"]) == 2
    np.testing.assert_allclose(metrics["episode_return"], jnp.mean(jnp.sum(transition.reward[:3], 0)), rtol=1e-6)
    assert float(metrics["episode_length"]) == 3.0
    _, _, _, quiet = collect(after, 1)
    assert int(quiet["episodes_ended"]) == 0 and float(quiet["episode_return"]) == float(metrics["episode_return"])


def test_terminations_cut_episodes_and_never_bootstrap_and_the_stored_log_prob_is_the_policys():
    env = PointToTarget(time_limit=50, speed=1.0, terminate_within=0.3)
    carry = rollout.reset_envs(env, None, jax.random.PRNGKey(3), 64)

    @jax.jit
    def collect(carry):
        actor = ppo.init(CONFIG, None, jax.random.PRNGKey(0)).actor
        value = lambda obs: jnp.ones(obs.shape[:-1])
        out = rollout.collect(env, None, carry, None, ppo.sample(actor), value, jax.random.PRNGKey(4), 20)
        flat = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), out[1])
        return out, ppo.squashed_log_prob(*ppo.distribution(actor, flat.observation), flat.action)

    (_, transition, _, metrics), log_prob = collect(carry)
    # The epochs see the policy's inputs and actions exactly as sampled: PPO's ratio starts at 1.
    np.testing.assert_allclose(log_prob, transition.extras.reshape(-1), rtol=1e-5, atol=1e-5)
    assert transition.terminated.any() and not (transition.terminated & transition.truncated).any()
    assert 0 < float(metrics["episode_length"]) < 20
    advantage, _ = objectives.gae(transition.reward, transition.value, transition.next_value, transition.terminated,
                               transition.truncated, 0.9, 0.95)
    ended = np.asarray(transition.terminated)
    np.testing.assert_allclose(advantage[ended], transition.reward[ended] - 1.0, rtol=1e-6)


def test_config_refuses_uneven_minibatches_and_unknown_environments():
    with pytest.raises(ConfigError, match="minibatches"):
        dataclasses.replace(CONFIG, minibatches=7)
    with pytest.raises(ConfigError, match="env must be one of"):
        ppo.make_data(dataclasses.replace(CONFIG, env="no-such-env"))
    with pytest.raises(ConfigError, match="gae_chunk"):
        dataclasses.replace(CONFIG, gae_chunk=7)
    with pytest.raises(ConfigError, match="fixed_std"):
        dataclasses.replace(CONFIG, fixed_std=0.5, state_dependent_std=True)


def _run(tmp_path, name, iterations, config=CONFIG):
    run_config = runner.RunConfig(iterations=iterations, num_seeds=2, out=str(tmp_path / name), log_every=5,
                                  eval_every=1000, checkpoint_every=1000, progress=False)
    return runner.run(ppo.ALGORITHM, config, run_config)


def test_ppo_learns_to_reach_the_target(tmp_path):
    result = _run(tmp_path, "learn", 20)
    with (tmp_path / "learn" / "metrics.csv").open() as file:
        rows = list(csv.DictReader(file))
    first = np.mean([float(r["episode_return"]) for r in rows if r["iteration"] == "5"])
    last = np.mean([float(r["episode_return"]) for r in rows if r["iteration"] == "20"])
    # Measured: about -25 over iterations 1-5 (a near-random policy), about -4.5 over iterations 16-20.
    assert last > first / 2 and last > first + 8, (first, last)
    assert result.summary["env_steps"] == 20 * 16 * 50
    assert float(result.state.obs_stats.count[0]) == 20 * 16 * 50


def test_a_seeded_run_is_deterministic_and_seeds_differ(tmp_path):
    first, second = _run(tmp_path, "a", 5), _run(tmp_path, "b", 5)
    for x, y in zip(jax.tree.leaves(first.state), jax.tree.leaves(second.state)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert not np.array_equal(first.state.critic.weights[0][0], first.state.critic.weights[0][1])


@pytest.mark.slow
def test_ppo_with_its_defaults_swings_up_the_gymnax_pendulum(tmp_path):
    # rejax's tuned Pendulum-v1 PPO, whose own run is 75 iterations (750k steps) and ends near -200 (ppo.py).
    _run(tmp_path, "pendulum", PENDULUM_ITERATIONS, ppo.PPOConfig())
    with (tmp_path / "pendulum" / "metrics.csv").open() as file:
        rows = list(csv.DictReader(file))
    first = [float(r["episode_return"]) for r in rows if r["iteration"] == "5"]
    last = [float(r["episode_return"]) for r in rows if r["iteration"] == str(PENDULUM_ITERATIONS)]
    # A random policy scores about -1,200; a swung-up pendulum held upright about -150 to -200.
    assert max(first) < -800 and min(last) > PENDULUM_FLOOR, (first, last)
