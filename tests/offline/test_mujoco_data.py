"""SAC behaviour policies and the D4RL-style MuJoCo datasets made from them."""

import math
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fluxrl.core.config import ConfigError
from fluxrl.offline import sac, sac_loop
from fluxrl.offline.mujoco_data import (MEDIUM_TARGET_RETURN, RANDOM_COLLECT_SEED, MujocoDataConfig, make_env,
                                        make_mujoco_dataset)

pytestmark = pytest.mark.filterwarnings("ignore:.*out of date:DeprecationWarning")

TINY_SAC = sac.SACConfig(hidden_width=32, batch_size=32, random_steps=64, updates_per_call=16)


class MatchTheObservation(gym.Env):
    """A one-step contextual bandit: observe x ~ U(-1, 1), reward -(a - x)^2; a random policy gets -2/3."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = self.np_random.uniform(-1.0, 1.0, (1,)).astype(np.float32)
        return self.x, {}

    def step(self, action):
        return self.x, -float((action[0] - self.x[0]) ** 2), True, False, {}


def assert_episodes_are_consistent(data):
    """next_observations[t] == observations[t+1] inside episodes, every episode ends with a terminal or a timeout."""
    ends = np.logical_or(data.terminals > 0, data.timeouts > 0)
    inside = ~ends[:-1]
    np.testing.assert_array_equal(data.next_observations[:-1][inside], data.observations[1:][inside])
    assert ends[-1]
    assert not np.any(np.logical_and(data.terminals > 0, data.timeouts > 0))


def test_tanh_gaussian_log_density_matches_the_change_of_variables():
    actor = sac.mlp(3, 4, 8, 1, jax.random.key(0))
    observation = jnp.array([0.3, -1.0, 2.0])
    key = jax.random.key(1)
    action, log_prob = sac.sample_action(actor, observation, key)
    mean, log_std = sac.gaussian_parameters(actor, observation)
    pre_tanh = np.arctanh(np.asarray(action, np.float64))
    std = np.exp(np.asarray(log_std, np.float64))
    gaussian = -0.5 * ((pre_tanh - np.asarray(mean)) / std) ** 2 - np.log(std) - 0.5 * math.log(2 * math.pi)
    expected = np.sum(gaussian - np.log(1.0 - np.tanh(pre_tanh) ** 2))
    assert float(log_prob) == pytest.approx(expected, abs=1e-3)


def test_sac_learns_a_contextual_bandit():
    result = sac_loop.train_sac(TINY_SAC, MatchTheObservation, 800, 0,
                           evaluation=sac_loop.EvaluationConfig(every_steps=800, episodes=100, deterministic=True))
    assert result.curve[-1][1] > -0.1  # random: -2/3; the best policy: 0


def test_sac_is_deterministic_given_its_seed():
    def final_actor(seed):
        result = sac_loop.train_sac(TINY_SAC, MatchTheObservation, 160, seed,
                               evaluation=sac_loop.EvaluationConfig(every_steps=160, episodes=2))
        return jax.tree.leaves(result.state.actor), result.curve

    (first, curve_a), (second, curve_b), (other, _) = final_actor(0), final_actor(0), final_actor(1)
    assert curve_a == curve_b
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_random_dataset_is_deterministic_with_d4rl_keys():
    data = make_mujoco_dataset("halfcheetah-random", size=2000, seed=0, progress=False)
    again = make_mujoco_dataset("halfcheetah-random", size=2000, seed=0, progress=False)
    other = make_mujoco_dataset("halfcheetah-random", size=2000, seed=1, progress=False)
    for a, b in zip(data, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(data.actions, other.actions)
    assert data.observations.shape == data.next_observations.shape == (2000, 17)
    assert data.actions.shape == (2000, 6) and data.rewards.shape == (2000,)
    assert all(array.dtype == np.float32 for array in data)
    assert np.all(np.abs(data.actions) <= 1.0)
    assert np.flatnonzero(data.timeouts).tolist() == [999, 1999]  # HalfCheetah's 1000-step limit
    assert not np.any(data.terminals)  # HalfCheetah never falls
    assert_episodes_are_consistent(data)
    # The rewards are the environment's for these transitions: replaying the first actions reproduces them.
    env = make_env("halfcheetah")
    observation, _ = env.reset(seed=0 + RANDOM_COLLECT_SEED)
    np.testing.assert_array_equal(observation.astype(np.float32), data.observations[0])
    for t in range(5):
        observation, reward, *_ = env.step(data.actions[t])
        assert reward == pytest.approx(data.rewards[t], rel=1e-6)


def tiny_data_config(target_return, expert_steps=300):
    return MujocoDataConfig(sac=TINY_SAC, evaluation=sac_loop.EvaluationConfig(every_steps=150, episodes=1),
                            medium_target_return=target_return, max_medium_steps=600, expert_steps=expert_steps)


def test_medium_replay_is_the_sac_replay_buffer_up_to_the_stop():
    config = tiny_data_config(target_return=-1e9)  # reached at the first evaluation
    data = make_mujoco_dataset("hopper-medium-replay", seed=0, config=config)
    run = sac_loop.train_sac(config.sac, lambda: make_env("hopper"), config.max_medium_steps, 0,
                        evaluation=config.evaluation, target_return=-1e9, stop_at_target=True)
    assert run.env_steps == run.snapshot.env_steps == 150
    assert data.rewards.shape == (150,)
    for name in ("observations", "actions", "rewards", "terminals", "next_observations"):
        np.testing.assert_array_equal(getattr(data, name), getattr(run.snapshot.replay, name))
    assert np.any(data.terminals)  # a random Hopper falls within 150 steps
    assert_episodes_are_consistent(data)
    first = make_mujoco_dataset("hopper-medium-replay", size=100, seed=0, config=config)
    np.testing.assert_array_equal(first.observations, data.observations[:100])
    assert first.timeouts[-1] == 1.0 or first.terminals[-1] == 1.0
    with pytest.raises(ConfigError, match="size"):
        make_mujoco_dataset("hopper-medium-replay", size=151, seed=0, config=config)


def test_medium_expert_concatenates_the_medium_and_expert_policies_data():
    data = make_mujoco_dataset("hopper-medium-expert", size=301, seed=0, config=tiny_data_config(-1e9))
    medium = make_mujoco_dataset("hopper-medium", size=150, seed=0, config=tiny_data_config(-1e9))
    assert data.rewards.shape == (301,)
    np.testing.assert_array_equal(data.observations[:150], medium.observations)
    assert not np.array_equal(data.actions[150:300], medium.actions)
    assert_episodes_are_consistent(data)


def test_unknown_dataset_names_are_refused():
    with pytest.raises(ConfigError, match="halfcheetah-medium-replay"):
        make_mujoco_dataset("halfcheetah-mediocre", size=10, seed=0)
    with pytest.raises(ConfigError, match="tau"):
        sac.SACConfig(tau=0.0)


def test_medium_targets_are_a_third_of_d4rl_expert_returns():
    assert MEDIUM_TARGET_RETURN == pytest.approx({"halfcheetah": 4045.0, "hopper": 1078.1, "walker2d": 1530.77},
                                                 abs=0.1)


@pytest.mark.slow
def test_sac_learns_pendulum():
    config = sac.SACConfig(random_steps=1000)
    result = sac_loop.train_sac(config, lambda: gym.make("Pendulum-v1"), 8000, 0,
                           evaluation=sac_loop.EvaluationConfig(every_steps=1000, episodes=5))
    assert result.curve[0][1] < -900  # an untrained policy spins
    assert result.curve[-1][1] > -300
