"""Property tests of the hypergrid environment."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxrl.core.config import ConfigError
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


@settings(max_examples=20, deadline=None)
@given(shape=shapes, preset=st.sampled_from(["standard", "hard"]))
def test_exact_target_distribution_sums_to_one(shape, preset):
    env = Hypergrid(*shape)
    target = target_distribution(env, hypergrid_params(preset))
    assert target.shape == (env.num_states,)
    assert np.isclose(target.sum(), 1.0) and (target > 0).all()


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
