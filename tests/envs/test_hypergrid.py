"""Property tests of the hypergrid environment."""

import itertools
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fluxrl.core.config import ConfigError
from fluxrl.envs.gflownet.base import MAX_ENUMERABLE_STATES
from fluxrl.envs.gflownet.hypergrid import Hypergrid, hypergrid_params
from fluxrl.gflownet.metrics import target_distribution

shapes = st.tuples(st.integers(1, 4), st.integers(2, 7))


def _state(env, coords):
    return env.reset(env.default_params(), jax.random.PRNGKey(0))._replace(coords=jnp.asarray(coords, jnp.int32))


@settings(max_examples=40, deadline=None)
@given(shape=shapes, data=st.data())
def test_forward_mask_allows_exactly_the_increments_that_stay_on_the_grid(shape, data):
    env = Hypergrid(*shape)
    coords = data.draw(st.lists(st.integers(0, env.height - 1), min_size=env.ndim, max_size=env.ndim))
    mask = np.asarray(env.forward_mask(_state(env, coords)))
    for action in range(env.ndim):
        assert mask[action] == (coords[action] + 1 <= env.height - 1)
    assert mask[env.exit_action]


@settings(max_examples=40, deadline=None)
@given(shape=shapes, data=st.data())
def test_backward_step_inverts_step(shape, data):
    env = Hypergrid(*shape)
    coords = data.draw(st.lists(st.integers(0, env.height - 1), min_size=env.ndim, max_size=env.ndim))
    state = _state(env, coords)
    valid = np.flatnonzero(np.asarray(env.forward_mask(state))[:env.ndim])
    if len(valid) == 0:
        return
    action = data.draw(st.sampled_from(list(valid)))
    child = env.step(state, action)
    assert bool(env.backward_mask(child)[env.backward_action(state, action)])
    parent = env.backward_step(child, env.backward_action(state, action))
    np.testing.assert_array_equal(parent.coords, state.coords)


@settings(max_examples=25, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**31 - 1))
def test_every_random_rollout_terminates_within_max_length(shape, seed):
    env = Hypergrid(*shape)
    state = env.reset(env.default_params(), jax.random.PRNGKey(0))
    rng = np.random.default_rng(seed)
    for _ in range(env.max_length):
        valid = np.flatnonzero(np.asarray(env.forward_mask(state)))
        state = env.step(state, jnp.int32(rng.choice(valid)))
        if bool(env.is_terminal(state)):
            break
    assert bool(env.is_terminal(state))
    assert not np.asarray(env.forward_mask(state)).any()


def _hand_reward(cell, height, params):
    """R(cell) from the reference formula, decided in exact rational arithmetic."""
    distances = [abs(Fraction(s, height - 1) - Fraction(1, 2)) for s in cell]
    return (params.r0 + params.r1 * all(Fraction(1, 4) < d for d in distances)
            + params.r2 * all(Fraction(3, 10) < d < Fraction(2, 5) for d in distances))


@settings(max_examples=10, deadline=None)
@given(shape=st.tuples(st.integers(1, 3), st.integers(2, 7)), preset=st.sampled_from(["standard", "hard"]))
def test_exact_target_distribution_is_r_over_z_of_every_cell_in_row_major_order(shape, preset):
    env = Hypergrid(*shape)
    params = hypergrid_params(preset)
    target = target_distribution(env, params)
    cells = list(itertools.product(range(env.height), repeat=env.ndim))  # row-major, last coordinate fastest
    rewards = np.array([_hand_reward(cell, env.height, params) for cell in cells])
    np.testing.assert_allclose(target, rewards / rewards.sum(), rtol=1e-5)


def test_reward_matches_the_reference_formula_on_a_hand_computed_grid():
    env = Hypergrid(ndim=2, height=8)
    params = hypergrid_params("standard")
    # s/7 for s = 0..7; |s/7 - 0.5| > 0.25 for s in {0, 1, 6, 7}; in (0.3, 0.4) for s in {1, 6}.
    expected = {(0, 0): 1e-3 + 0.5, (1, 6): 1e-3 + 0.5 + 2.0, (3, 3): 1e-3, (1, 3): 1e-3, (7, 1): 1e-3 + 0.5}
    for coords, reward in expected.items():
        assert np.isclose(np.exp(env.log_reward(params, _state(env, coords))), reward, rtol=1e-5)
    assert env.num_modes == 4


@pytest.mark.parametrize("kwargs, field", [({"height": 1}, "height"), ({"ndim": 0}, "ndim")])
def test_bad_sizes_are_rejected_with_the_field_name(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        Hypergrid(**kwargs)


@pytest.mark.parametrize("height", [8, 16, 20, 32, 64])
def test_modes_are_exactly_the_cells_of_maximal_reward(height):
    env = Hypergrid(ndim=2, height=height)
    params = hypergrid_params("standard")
    log_rewards = np.asarray(jax.vmap(env.log_reward, (None, 0))(params, env.terminal_states()))
    hits = np.asarray(jax.vmap(env.mode_hits, (None, 0))(params, env.terminal_states()))
    is_max = np.isclose(log_rewards, log_rewards.max())
    np.testing.assert_array_equal(hits.any(axis=1), is_max)
    assert hits.sum() == env.num_modes == is_max.sum()


@pytest.mark.parametrize("ndim, height", [(1, MAX_ENUMERABLE_STATES + 1), (2, 1415), (4, 38), (7, 8)])
def test_a_grid_larger_than_exact_evaluation_handles_is_refused_naming_the_limit(ndim, height):
    assert height**ndim > MAX_ENUMERABLE_STATES
    with pytest.raises(ConfigError, match=rf"^height\*\*ndim must be <= {MAX_ENUMERABLE_STATES}"):
        Hypergrid(ndim=ndim, height=height)


@pytest.mark.parametrize("ndim, height", [(4, 20), (2, 64), (2, 32), (2, 8), (1, MAX_ENUMERABLE_STATES), (2, 1414)])
def test_paper_sized_grids_and_grids_at_the_limit_are_accepted(ndim, height):
    assert Hypergrid(ndim=ndim, height=height).num_states <= MAX_ENUMERABLE_STATES


def _float_formula_reward(coords, height, params, dtype):
    """R0 + R1 [0.25 < ax] + R2 [0.3 < ax < 0.4], ax = |s / (H - 1) - 0.5| per coordinate, in floating point
    as torchgfn and gfnx write it (float32 there: torch's default float, JAX without x64); float64 as numpy."""
    if dtype == "float32":
        ax = np.asarray(jnp.abs(jnp.asarray(coords, jnp.int32) / (height - 1) - 0.5))
        assert ax.dtype == np.float32
        outer, inner = ax > np.float32(0.25), (ax > np.float32(0.3)) & (ax < np.float32(0.4))
    else:
        ax = np.abs(np.asarray(coords) / (height - 1) - 0.5)
        outer, inner = ax > 0.25, (ax > 0.3) & (ax < 0.4)
    return params.r0 + params.r1 * outer.all(-1) + params.r2 * inner.all(-1)


def _cells_whose_reward_differs(env, dtype):
    params = hypergrid_params("standard")
    cells = np.asarray(env.terminal_states().coords)
    ours = np.exp(np.asarray(jax.vmap(env.log_reward, (None, 0))(params, env.terminal_states()), np.float64))
    theirs = _float_formula_reward(cells, env.height, params, dtype)
    differs = ~np.isclose(ours, theirs, rtol=1e-5)
    return {tuple(int(c) for c in cell) for cell in cells[differs]}


@pytest.mark.parametrize("height, float32_cells, float64_cells", [
    (11, set(), {(8,)}),  # 8/10 - 0.5 = 0.3 exactly; float64 rounds it to 0.30000000000000004
    (16, {(12,)}, {(12,)}),  # 12/15 - 0.5 = 0.3 exactly; float32 gives 0.30000007, float64 0.30000000000000004
])
def test_band_edges_are_decided_exactly_unlike_the_documented_float_formula(height, float32_cells, float64_cells):
    # docs/metrics.md ("Hypergrid reward bands") lists these cells; if this fails, update it.
    env = Hypergrid(ndim=1, height=height)
    assert _cells_whose_reward_differs(env, "float32") == float32_cells
    assert _cells_whose_reward_differs(env, "float64") == float64_cells
    for (s,) in float32_cells | float64_cells:  # on the ring's inner edge: ours leaves it out of the ring
        assert np.exp(float(env.log_reward(hypergrid_params("standard"), _state(env, [s])))) == pytest.approx(0.501)


def test_at_height_16_the_float32_formula_has_nine_top_cells_in_2d_where_ours_has_four():
    env = Hypergrid(ndim=2, height=16)
    differing = _cells_whose_reward_differs(env, "float32")
    assert differing == {(2, 12), (12, 2), (12, 12), (12, 13), (13, 12)}
    assert env.num_modes == 4


@pytest.mark.parametrize("height", [8, 20, 32, 64])
def test_paper_heights_agree_with_the_float_formula_in_float32_and_float64(height):
    env = Hypergrid(ndim=1, height=height)
    assert _cells_whose_reward_differs(env, "float32") == set()
    assert _cells_whose_reward_differs(env, "float64") == set()


@settings(max_examples=5, deadline=None)  # each height compiles anew; the examples hold every kind of edge
@given(height=st.integers(2, 200))
@example(height=11).via("0.3 and 0.4 on grid points")
@example(height=16).via("0.3 on a grid point")
@example(height=29).via("0.25 on a grid point")
@example(height=31).via("0.3 and 0.4 on grid points")
def test_bands_equal_the_formula_in_exact_rational_arithmetic(height):
    env = Hypergrid(ndim=1, height=height)
    params = hypergrid_params("standard")
    rewards = np.exp(np.asarray(jax.vmap(env.log_reward, (None, 0))(params, env.terminal_states()), np.float64))
    for s in range(height):
        assert rewards[s] == pytest.approx(_hand_reward((s,), height, params), rel=1e-5), s
