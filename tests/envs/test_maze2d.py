"""maze2d on PointMaze with D4RL's conventions: coordinates, goal, reward, episode length."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fluxrl.core.config import ConfigError
from fluxrl.envs.control import maze2d


@pytest.fixture(scope="module")
def umaze():
    env = maze2d.make("maze2d-umaze")
    yield env
    env.close()


def test_layouts_are_pointmazes_and_goals_are_d4rls():
    from gymnasium_robotics.envs.maze import maps

    for name, reference in (("umaze", maps.U_MAZE), ("medium", maps.MEDIUM_MAZE), ("large", maps.LARGE_MAZE)):
        assert maze2d.LAYOUTS[name].walls.tolist() == (np.array(reference) == 1).tolist()
    assert [maze2d.LAYOUTS[name].goal_cell for name in ("umaze", "medium", "large")] == [(1, 1), (6, 6), (7, 9)]


def test_sparse_reward_is_one_exactly_within_half_a_unit_of_the_goal():
    goal = maze2d.LAYOUTS["umaze"].goal
    offsets = np.array([[0.0, 0.0], [0.3, -0.4], [0.0, 0.5], [0.0, 0.5001], [0.4, 0.4], [1.0, 0.0]])
    rewards = maze2d.goal_reward(goal + offsets, goal, "sparse")
    assert rewards.tolist() == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]


@settings(max_examples=50, deadline=None)
@given(st.floats(-1.0, 1.0), st.floats(-1.0, 1.0))
def test_rewards_are_the_indicator_and_the_exponential_of_the_distance(dx, dy):
    goal = maze2d.LAYOUTS["medium"].goal
    distance = np.hypot(dx, dy)
    assert maze2d.goal_reward(goal + [dx, dy], goal, "sparse") == float(distance <= 0.5)
    assert maze2d.goal_reward(goal + [dx, dy], goal, "dense") == pytest.approx(np.exp(-distance), rel=1e-6)


@pytest.mark.parametrize("offset, reward", [((0.0, 0.49), 1.0), ((0.0, 0.51), 0.0), ((-0.35, -0.35), 1.0),
                                            ((-0.36, -0.36), 0.0)])
def test_the_environment_pays_one_within_half_a_unit_of_the_goal(umaze, offset, reward):
    umaze.reset(seed=0)
    env = umaze.unwrapped
    env.set_state(env.goal + np.array(offset))
    observation, paid, terminated, truncated, info = umaze.step(np.zeros(2))
    assert paid == reward and info["success"] == bool(reward)
    assert not terminated and not truncated


@pytest.mark.parametrize("name, steps", [("maze2d-umaze", 300), ("maze2d-medium-dense", 600), ("maze2d-large", 800)])
def test_episodes_last_d4rls_length_and_never_end_at_the_goal(name, steps):
    env = maze2d.make(name)
    env.reset(seed=1)
    env.unwrapped.set_state(env.unwrapped.goal)  # sitting on the goal does not end the episode
    truncated, count, rewards = False, 0, []
    while not truncated:
        _, reward, terminated, truncated, _ = env.step(np.zeros(2))
        assert not terminated
        rewards.append(reward)
        count += 1
    env.close()
    assert count == steps
    assert min(rewards) > 0.3 if name.endswith("dense") else min(rewards) == 1.0


def test_observations_and_actions_are_in_d4rls_row_column_coordinates(umaze):
    umaze.reset(seed=0, options={"cell": (3, 2)})
    observation = umaze.unwrapped.set_state(maze2d.cell_center((1, 1)))
    assert observation.tolist() == pytest.approx([0.8, 0.8, 0.0, 0.0])
    assert maze2d.cell_of(observation) == (1, 1)
    # action[1] pushes along the row (y) until the wall after cell (1, 3), whose edge is at 3.3; the radius is 0.1.
    for _ in range(200):
        observation, *_ = umaze.step(np.array([0.0, 1.0]))
    assert observation[0] == pytest.approx(0.8, abs=1e-3) and observation[1] == pytest.approx(3.2, abs=0.01)
    # action[0] pushes down the column (x) to row 3, the bottom row.
    for _ in range(200):
        observation, *_ = umaze.step(np.array([1.0, 0.0]))
    assert maze2d.cell_of(observation) == (3, 3) and observation[0] == pytest.approx(3.2, abs=0.01)


def test_reset_draws_free_cells_with_d4rls_noise_and_is_deterministic_given_seed(umaze):
    cells = set()
    for seed in range(40):
        observation, _ = umaze.reset(seed=seed)
        cell = maze2d.cell_of(observation)
        cells.add(cell)
        assert np.abs(observation[:2] - np.array(cell)).max() <= 0.1 + 1e-6  # D4RL: cell index + U(-0.1, 0.1)
    assert cells == set(maze2d.LAYOUTS["umaze"].free_cells)
    assert umaze.reset(seed=3)[0].tolist() == umaze.reset(seed=3)[0].tolist()


def test_unknown_names_and_wall_cells_are_refused_with_the_choices():
    with pytest.raises(ConfigError, match="maze2d-umaze, maze2d-umaze-dense"):
        maze2d.make("maze2d-open")
    env = maze2d.make("maze2d-umaze")
    with pytest.raises(ConfigError, match="free cell"):
        env.reset(seed=0, options={"cell": (2, 1)})
    env.close()
