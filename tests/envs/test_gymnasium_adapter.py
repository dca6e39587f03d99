"""The Gymnasium adapter: one return per episode, reproducible from the seed, batched stepping = one at a time."""

import gymnasium
import numpy as np
import pytest

from fluxrl.envs.control.gymnasium_adapter import EpisodeRunner, run_episodes


def swing(observations):
    """Pendulum: torque along the angular velocity (a deterministic policy of the batch)."""
    return np.clip(2.0 * np.sign(observations[:, 2:3]), -2.0, 2.0)


def pump(observations):
    """MountainCarContinuous: push along the velocity; reaches the goal after a start-dependent number of steps."""
    return np.where(observations[:, 1:2] >= 0, 1.0, -1.0)


def pendulum():
    return gymnasium.make("Pendulum-v1", max_episode_steps=50)


def mountain_car():
    return gymnasium.make("MountainCarContinuous-v0", max_episode_steps=400)


def test_one_return_per_episode_and_the_same_returns_for_the_same_seed():
    runner = EpisodeRunner(pendulum, num_episodes=3)
    first = runner.run(swing, seed=7)
    assert first.shape == (3,)
    assert np.all(first < 0)  # Pendulum's rewards are costs
    assert len(set(first.tolist())) == 3  # episode i starts from seed 7 + i
    np.testing.assert_array_equal(runner.run(swing, seed=7), first)
    assert not np.array_equal(runner.run(swing, seed=8), first)
    runner.close()


def test_episodes_that_end_at_different_steps_match_episodes_run_one_at_a_time():
    calls = []

    def counting(observations):
        calls.append(observations.shape)
        return pump(observations)

    together = run_episodes([mountain_car() for _ in range(4)], counting, seed=3)
    alone = [run_episodes([mountain_car()], pump, seed=3 + i)[0] for i in range(4)]
    np.testing.assert_allclose(together, alone)
    assert {shape for shape in calls} == {(4, 2)}  # the policy always sees the whole batch: one compilation
    # Reward 100 at the goal minus 0.1 a^2 per step, |a| = 1: the goal was reached, each after its own count.
    lengths = np.round((100.0 - together) / 0.1).astype(int)
    assert np.all(together > 0) and len(set(lengths.tolist())) > 1


def test_an_environment_without_a_time_limit_is_refused():
    runner = EpisodeRunner(_unbounded, 1)
    with pytest.raises(ValueError, match="no time limit"):
        runner.run(swing, seed=0)


def _unbounded():
    """Pendulum without its TimeLimit: its episodes never end."""
    env = gymnasium.make("Pendulum-v1").unwrapped
    env.spec = gymnasium.envs.registration.EnvSpec("Unbounded-v0", max_episode_steps=None)
    return env
