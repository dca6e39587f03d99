"""The gymnax adapter: actions onto the env's bounds, the same dynamics as raw gymnax, time limits vs terminations."""

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxrl.envs.control.gymnax_adapter import GYMNAX_ENVS, GymnaxEnv
from fluxrl.onpolicy import rollout

PENDULUM = GymnaxEnv("Pendulum-v1")
CAR = GymnaxEnv("MountainCarContinuous-v0")
STEPS = 12
SHORT_LIMIT = 5  # so a rollout of STEPS steps crosses two automatic resets


def _both_rollouts(adapter: GymnaxEnv, seed: int):
    """The same keys and actions through the adapter and through raw gymnax (actions scaled by hand)."""
    raw_env, raw_params = gymnax.make(adapter.env_id)
    raw_params = raw_params.replace(max_steps_in_episode=SHORT_LIMIT)
    params = adapter.default_params().replace(max_steps_in_episode=jnp.int32(SHORT_LIMIT))
    high = float(raw_env.action_space(raw_params).high)  # both envs' boxes are symmetric: [-high, high]
    key = jax.random.PRNGKey(seed)
    reset_key, action_key, step_key = jax.random.split(key, 3)
    actions = jax.random.uniform(action_key, (STEPS, adapter.action_size), minval=-1.0, maxval=1.0)
    step_keys = jax.random.split(step_key, STEPS)

    def ours(state, inputs):
        step_key, action = inputs
        out = adapter.step(step_key, state, action, params)
        return out.state, (out.observation, out.reward, out.final_observation)

    def theirs(state, inputs):
        step_key, action = inputs
        observation, state, reward, _, _, info = raw_env.step(step_key, state, high * action, raw_params)
        return state, (observation, reward, info["final_observation"])

    _, state = adapter.reset(reset_key, params)
    _, raw_state = raw_env.reset(reset_key, raw_params)
    return (jax.lax.scan(ours, state, (step_keys, actions))[1], jax.lax.scan(theirs, raw_state, (step_keys, actions))[1])


_ROLLOUTS = {env.env_id: jax.jit(lambda seed, env=env: _both_rollouts(env, seed)) for env in (PENDULUM, CAR)}


@settings(max_examples=10, deadline=None)
@given(st.sampled_from(sorted(_ROLLOUTS)), st.integers(0, 2 ** 31 - 1))
def test_adapter_steps_equal_raw_gymnax_for_the_same_keys_and_scaled_actions(env_id, seed):
    ours, theirs = _ROLLOUTS[env_id](seed)
    for mine, raw in zip(ours, theirs):
        np.testing.assert_allclose(np.asarray(mine), np.asarray(raw), rtol=1e-6, atol=1e-6)


_ENV_ACTION = jax.jit(lambda action: (PENDULUM.env_action(action, PENDULUM.default_params()),
                                      CAR.env_action(action, CAR.default_params())))


@settings(max_examples=50, deadline=None)
@given(st.floats(-3.0, 3.0, allow_nan=False))
def test_actions_in_minus_one_one_map_affinely_onto_the_bounds_and_beyond_them_to_the_bound(action):
    torque, force = (float(x[0]) for x in _ENV_ACTION(jnp.array([action], jnp.float32)))
    clipped = min(max(action, -1.0), 1.0)
    # Pendulum-v1's torque box is [-2, 2], MountainCarContinuous-v0's force box [-1, 1].
    assert torque == pytest.approx(2.0 * clipped, abs=1e-6)
    assert force == pytest.approx(clipped, abs=1e-6)
    assert -2.0 <= torque <= 2.0 and -1.0 <= force <= 1.0


def test_pendulum_only_truncates_at_its_time_limit_and_keeps_the_final_observation():
    params = PENDULUM.default_params()
    limit = int(params.max_steps_in_episode)

    def step(state, key):
        out = PENDULUM.step(key, state, jnp.ones(1), params)
        return out.state, out

    @jax.jit
    def episode(key):
        _, state = PENDULUM.reset(key, params)
        return jax.lax.scan(step, state, jax.random.split(key, limit + 1))[1]

    out = episode(jax.random.PRNGKey(0))
    assert not out.terminated.any()
    assert np.flatnonzero(out.truncated).tolist() == [limit - 1]  # once, on step 200
    np.testing.assert_array_equal(out.final_observation[:limit - 1], out.observation[:limit - 1])
    # At the limit the observation is the new episode's; the final one continues the old (|theta_dot| <= 8).
    assert not np.allclose(out.final_observation[limit - 1], out.observation[limit - 1])
    assert abs(float(out.final_observation[limit - 1, 2] - out.final_observation[limit - 2, 2])) < 2.0
    assert int(out.state.time[limit - 1]) == 0 and int(out.state.time[limit]) == 1


@jax.jit
def _car_step(position, velocity, time, action):
    state = CAR.reset(jax.random.PRNGKey(0), CAR.default_params())[1]
    state = state.replace(position=jnp.float32(position), velocity=jnp.float32(velocity), time=jnp.int32(time))
    return CAR.step(jax.random.PRNGKey(1), state, jnp.array([action], jnp.float32), CAR.default_params())


def test_mountain_car_terminates_at_the_goal_even_on_the_last_step_and_truncates_otherwise():
    goal = _car_step(0.44, 0.05, 10, 1.0)
    assert bool(goal.terminated) and not bool(goal.truncated)
    assert float(goal.reward) == pytest.approx(100.0 - 0.1)  # the goal bonus less the action cost 0.1 a^2
    assert float(goal.final_observation[0]) >= 0.45 and -0.6 <= float(goal.observation[0]) <= -0.4
    last = _car_step(0.44, 0.05, 998, 1.0)  # gymnax flags both here; a termination has nothing to bootstrap
    assert bool(last.terminated) and not bool(last.truncated)
    limit = _car_step(-0.5, 0.0, 998, 0.0)
    assert bool(limit.truncated) and not bool(limit.terminated)
    assert float(limit.final_observation[0]) == pytest.approx(-0.5, abs=0.01)
    running = _car_step(-0.5, 0.0, 10, 0.0)
    assert not bool(running.truncated | running.terminated)
    np.testing.assert_array_equal(running.observation, running.final_observation)


def test_the_registry_names_make_the_gymnax_environments():
    assert {name: rollout.make_env(name).env_id for name in GYMNAX_ENVS} == {
        "pendulum": "Pendulum-v1", "mountaincar-continuous": "MountainCarContinuous-v0"}
    sizes = {name: (rollout.make_env(name).observation_size, rollout.make_env(name).action_size)
             for name in GYMNAX_ENVS}
    assert sizes == {"pendulum": (3, 1), "mountaincar-continuous": (2, 1)}
