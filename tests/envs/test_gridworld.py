"""FPO's grid world: the official layouts, moves, rewards, time limit, automatic reset and helpers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fluxrl.core.config import ConfigError
from fluxrl.envs.control import gridworld as gw

TWO_SLITS = gw.GridWorld("two_slits")
# The step reads the layout only from its params, so one compiled step serves every layout.
STEP = jax.jit(gw.GridWorld().step)


def cell_state(x, y, steps=0):
    return gw.GridWorldState(jnp.array([x, y], jnp.int32), jnp.array(steps, jnp.int32))


@jax.jit
def _rollout(params, position, actions, key):
    """Cells and rewards of a rollout from `position` under `actions` [T, 2] (two_slits, automatic resets)."""
    def one(state, inputs):
        action, step_key = inputs
        step = TWO_SLITS.step(step_key, state, action, params)
        return step.state, (state.position, step.state.position, step.final_observation, step.terminated,
                            step.truncated)
    keys = jax.random.split(key, actions.shape[0])
    return jax.lax.scan(one, gw.GridWorldState(position, jnp.array(0, jnp.int32)), (actions, keys))[1]


def test_layouts_are_the_official_ones():
    params = {layout: gw.layout_params(layout) for layout in gw.LAYOUTS}
    two_walls, three_goals, two_slits = (params[layout] for layout in gw.LAYOUTS)
    rows = np.asarray(two_walls.goal_labels)
    assert (rows[:, [0, 1]] == 0).all() and (rows[:, [23, 24]] == 1).all() and (rows[:, 2:23] == -1).all()
    labels = np.asarray(three_goals.goal_labels)
    for label, (x, y) in enumerate(((12, 18), (7, 7), (17, 7))):
        assert (labels[x - 1:x + 2, y - 1:y + 2] == label).all() and (labels == label).sum() == 9
    reward = np.asarray(three_goals.reward_map)
    assert (reward[11:14, 11:14] == -10.0).all() and (reward == -10.0).sum() == 9 and (reward == 20.0).sum() == 27
    walls = np.asarray(two_slits.wall_map)
    assert walls.sum() == 17 and np.nonzero(~walls[15])[0].tolist() == [4, 5, 6, 7, 17, 18, 19, 20]
    assert (np.asarray(two_slits.goal_labels)[24] == 0).all() and (np.asarray(two_slits.reward_map) > 0).sum() == 25
    for layout in gw.LAYOUTS:
        terminal = np.asarray(params[layout].terminal_map)
        assert (terminal == (np.asarray(params[layout].reward_map) != 0)).all()
        assert int(params[layout].max_steps) == 100


def test_unknown_layout_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="two_walls, three_goals, two_slits"):
        gw.GridWorld("cshape")


@pytest.mark.parametrize("value, move", [(0.49, 0), (0.51, 1), (0.5, 0), (-0.5, 0), (-0.51, -1), (1.5, 1),
                                         (1.7, 1), (-3.0, -1), (0.0, 0), (-0.49, 0)])
def test_actions_round_half_to_even_after_clipping_like_numpy(value, move):
    assert gw.action_move(jnp.array([value, -value], jnp.float32)).tolist() == [move, -move]
    assert move == int(np.round(np.clip(value, -1, 1)))  # the official rule, gridworld.py:341


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.floats(-2, 2, width=32), st.floats(-2, 2, width=32)), min_size=40, max_size=40),
       st.integers(0, 2**31 - 1))
def test_positions_stay_on_the_grid_and_out_of_walls_for_any_actions(actions, seed):
    params = gw.layout_params("two_slits", max_steps=15)
    before, after, final_observation, terminated, truncated = _rollout(
        params, jnp.array([14, 6], jnp.int32), jnp.array(actions, jnp.float32), jax.random.PRNGKey(seed))
    reached = np.asarray(gw.observation_position(final_observation))
    walls = np.asarray(params.wall_map)
    for cells in (np.asarray(before), np.asarray(after), reached):
        assert ((cells >= 0) & (cells < 25)).all()
        assert not walls[cells[:, 0], cells[:, 1]].any()
    # Each step moves at most one cell per axis: exactly the clipped, rounded move unless a wall blocks it.
    assert (np.abs(reached - np.asarray(before)) <= 1).all()
    ended = np.asarray(terminated | truncated)
    assert (np.asarray(after)[~ended] == reached[~ended]).all()


@pytest.mark.parametrize("layout, start, action, reward, cell", [
    ("two_walls", (4, 2), (0.0, -1.0), 20.0, (4, 1)), ("two_walls", (9, 22), (0.8, 0.6), 20.0, (10, 23)),
    ("three_goals", (10, 12), (0.7, 0.2), -10.0, (11, 12)), ("three_goals", (9, 7), (-1.0, 0.0), 20.0, (8, 7)),
    ("two_slits", (23, 3), (1.0, 1.0), 20.0, (24, 4)), ("two_slits", (14, 10), (1.0, 0.0), 0.0, (14, 10))])
def test_goals_pay_20_death_pays_minus_10_and_both_terminate_and_reset(layout, start, action, reward, cell):
    params = gw.start_at(gw.GridWorld(layout).default_params(), (3, 12))
    step = STEP(jax.random.PRNGKey(0), cell_state(*start, steps=5), jnp.array(action), params)
    assert float(step.reward) == reward and bool(step.terminated) == (reward != 0) and not bool(step.truncated)
    assert np.allclose(step.final_observation, (np.array(cell) - 12) / 12)
    expected = (3, 12) if reward != 0 else cell  # an ended episode restarts at the start cell, step 0
    assert step.state.position.tolist() == list(expected) and int(step.state.steps) == (0 if reward else 6)
    assert np.allclose(step.observation, (np.array(expected) - 12) / 12)


def test_truncation_comes_exactly_at_step_100_with_a_reset_and_the_pre_reset_final_observation():
    env = gw.GridWorld()
    params = gw.start_at(env.default_params(), (3, 5))

    def stay(state, key):
        step = env.step(key, state, jnp.zeros(2), params)
        return step.state, step

    _, steps = jax.jit(jax.lax.scan, static_argnums=0)(stay, cell_state(12, 12),
                                                        jax.random.split(jax.random.PRNGKey(1), 101))
    truncated = np.asarray(steps.truncated)
    assert np.nonzero(truncated)[0].tolist() == [99] and not np.asarray(steps.terminated).any()
    assert np.allclose(steps.final_observation[99], [0.0, 0.0])
    assert np.allclose(steps.observation[99], (np.array([3, 5]) - 12) / 12)
    assert steps.state.position[99].tolist() == [3, 5] and int(steps.state.steps[99]) == 0
    assert np.allclose(steps.observation[98], [0.0, 0.0]) and int(steps.state.steps[98]) == 99


def test_resets_draw_every_free_cell_and_never_a_goal_death_or_wall_cell():
    for layout in ("three_goals", "two_slits"):
        env = gw.GridWorld(layout)
        params = env.default_params()
        observations, states = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.PRNGKey(2), 6000),
                                                                       params)
        cells = np.asarray(states.position)
        free = np.asarray(~params.terminal_map & ~params.wall_map)
        assert free[cells[:, 0], cells[:, 1]].all() and (np.asarray(states.steps) == 0).all()
        assert len({tuple(cell) for cell in cells}) == free.sum()  # 6000 draws over <= 600 cells
        assert np.allclose(observations, (cells - 12) / 12)


def test_jit_vmap_over_64_envs_equals_a_python_loop_of_single_steps():
    env = gw.GridWorld("two_walls")
    params = gw.layout_params("two_walls", max_steps=8)  # short episodes, so resets happen in the window
    num_envs, num_steps = 64, 20
    keys = jax.random.split(jax.random.PRNGKey(3), (num_steps + 1, num_envs))
    actions = jax.random.uniform(jax.random.PRNGKey(4), (num_steps, num_envs, 2), minval=-1.2, maxval=1.2)
    # Host copies, so that the loop below slices them without a device call per slice.
    host_keys, host_actions = np.asarray(keys), np.asarray(actions)
    _, batch_state = jax.vmap(env.reset, in_axes=(0, None))(keys[0], params)
    batch_step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    single_reset = jax.jit(env.reset)
    batched, looped = [], [[] for _ in range(num_steps)]
    for t in range(num_steps):
        step = batch_step(keys[t + 1], batch_state, actions[t], params)
        batch_state = step.state
        batched.append(step)
    for i in range(num_envs):
        state = single_reset(host_keys[0, i], params)[1]
        for t in range(num_steps):
            step = STEP(host_keys[t + 1, i], state, host_actions[t, i], params)
            state = step.state
            looped[t].append(step)

    def stack(steps):
        return jax.tree_util.tree_map(lambda *leaves: np.stack(leaves), *steps)

    batched, looped = jax.device_get((batched, looped))
    batched, looped = stack(batched), stack([stack(steps) for steps in looped])
    for batch_leaf, leaf in zip(jax.tree_util.tree_leaves(batched), jax.tree_util.tree_leaves(looped)):
        assert batch_leaf.shape == leaf.shape and np.array_equal(batch_leaf, leaf)
    # The comparison covered terminations, truncations and automatic resets.
    assert looped.terminated.sum() > 10 and looped.truncated.sum() > 10


@pytest.mark.parametrize("layout, moves", [("two_walls", [(0.0, 1.0)] * 11),
                                           ("three_goals", [(-1.0, 0.0)] * 4),
                                           ("two_slits", [(0.9, -0.9)] * 5 + [(1.0, 0.2)] * 14)])
def test_a_scripted_path_from_the_start_reaches_a_goal_with_reward_20(layout, moves):
    params = gw.GridWorld(layout).default_params()
    state = gw.GridWorldState(jnp.asarray(gw.start_position(layout)), jnp.array(0, jnp.int32))
    rewards, ended = [], []
    for move in moves:
        step = STEP(jax.random.PRNGKey(0), state, jnp.array(move), params)
        state = step.state
        rewards.append(float(step.reward))
        ended.append(bool(step.terminated))
    assert rewards == [0.0] * (len(moves) - 1) + [20.0] and ended == [False] * (len(moves) - 1) + [True]
    assert int(gw.goal_index(params, gw.observation_position(step.final_observation))) >= 0


def test_goal_index_and_goals_reached_count_distinct_goal_regions():
    params = gw.layout_params("two_walls")
    cells = jnp.array([[3, 0], [5, 24], [4, 12], [20, 1]])
    assert gw.goal_index(params, cells).tolist() == [0, 1, -1, 0]
    assert int(gw.goals_reached(params, cells)) == 2
    assert int(gw.goals_reached(params, cells[jnp.array([0, 3, 2])])) == 1
    assert int(gw.goals_reached(params, cells[2:3])) == 0
    three = gw.layout_params("three_goals")
    assert int(gw.goals_reached(three, jnp.array([[[12, 18], [7, 7]], [[17, 7], [12, 12]]]))) == 3
    assert int(gw.goal_index(three, jnp.array([12, 12]))) == -1  # a death cell is no goal


def test_observation_position_inverts_observe_on_every_cell():
    cells = jnp.stack(jnp.meshgrid(jnp.arange(25), jnp.arange(25)), axis=-1).reshape(-1, 2)
    observations = gw.observe(cells)
    assert observations.min() == -1.0 and observations.max() == 1.0
    assert (gw.observation_position(observations) == cells).all()


def test_saddle_states_are_the_middle_row_of_two_walls_and_mirror_the_symmetric_layouts():
    assert sorted(map(tuple, gw.saddle_states("two_walls").tolist())) == [(x, 12) for x in range(25)]
    for layout, mirror in (("three_goals", lambda c: (24 - c[0], c[1])), ("two_slits", lambda c: (c[0], 24 - c[1]))):
        saddles = set(map(tuple, gw.saddle_states(layout).tolist()))
        assert saddles and saddles == {mirror(cell) for cell in saddles}
        assert tuple(gw.start_position(layout).tolist()) in saddles
    params = gw.layout_params("three_goals")
    for x, y in gw.saddle_states("three_goals"):
        assert not bool(params.terminal_map[x, y]) and not bool(params.wall_map[x, y])
    assert max(x for x, _ in gw.saddle_states("two_slits")) < 15  # measured left of the wall
    assert tuple(gw.start_position("two_walls").tolist()) == gw.PAPER_START_POINTS[0]


def test_plot_layouts_writes_a_png(tmp_path):
    path = tmp_path / "layouts.png"
    gw.plot_layouts(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
