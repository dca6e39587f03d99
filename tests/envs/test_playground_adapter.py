"""The MuJoCo Playground adapter: offline DM-Control tasks, time limit as truncation, divergence as termination,
automatic resets, clipped actions. Skipped unless the `playground` extra is installed.

Compiling an MJX step takes ~10 s, so the default tests share one compiled scenario: four copies of one
CartpoleSwingup start driven with actions 1, 7 (clipped to 1) and 0.5, and one whose velocities are NaN."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("mujoco_playground")

from fluxrl.core.config import ConfigError  # noqa: E402
from fluxrl.envs.control import playground_adapter as pa  # noqa: E402
from fluxrl.envs.control import registry  # noqa: E402

ACTIONS = (1.0, 7.0, 0.5, 0.0)
TIME_LIMIT = 3
NUM_STEPS = 5


def _scenario(env, key):
    """(two resets from different keys, the Step [NUM_STEPS, 4] of four copies of the first, its observation)."""
    reset_observation, reset_state = jax.vmap(env.reset, (0, None))(jax.random.split(key, 2), env.default_params())
    first_observation = reset_observation[0]
    states = jax.tree.map(lambda x: jnp.stack([x[0]] * len(ACTIONS)), reset_state)
    qvel = states.task.data.qvel.at[3].set(jnp.nan)  # the fourth copy's physics has diverged
    states = states._replace(task=states.task.replace(data=states.task.data.replace(qvel=qvel)))
    actions = jnp.asarray(ACTIONS)[:, None]
    params = pa.PlaygroundParams(jnp.asarray(TIME_LIMIT, jnp.int32))

    def one(states, step_key):
        keys = jax.random.split(step_key, len(ACTIONS))
        step = jax.vmap(env.step, (0, 0, 0, None))(keys, states, actions, params)
        return step.state, step._replace(state=step.state.steps)

    _, steps = jax.lax.scan(one, states, jax.random.split(key, NUM_STEPS))
    return reset_observation, steps, first_observation


@pytest.fixture(scope="module")
def cartpole():
    env = pa.PLAYGROUND_ENVS["dmc-cartpole-swingup"]()
    return env, jax.jit(lambda key: _scenario(env, key))(jax.random.PRNGKey(0))


def test_registry_names_every_task_and_the_cartpole_shapes_are_dm_controls():
    assert set(pa.PLAYGROUND_ENVS) == set(pa.TASKS) and all(name.startswith("dmc-") for name in pa.TASKS)
    env = pa.PLAYGROUND_ENVS["dmc-cartpole-swingup"]()
    assert (env.observation_size, env.action_size) == (5, 1)  # cart position, pole cos and sin, two velocities
    assert int(env.default_params().max_steps) == 1000


def test_unknown_task_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="CartpoleSwingup"):
        pa.PlaygroundEnv("CartpoleSwingUp")


def test_any_playground_task_is_named_by_its_own_name():
    names = pa.playground_names()
    assert "FishSwim" in names and "FishSwim" not in pa.TASKS.values()  # DM Control outside fluxrl's short list
    env = registry.make_env("FishSwim")
    assert isinstance(env, pa.PlaygroundEnv) and env.action_size == 5 and env.observation_size > 0
    observation, _ = jax.eval_shape(env.reset, jax.random.PRNGKey(0), env.default_params())
    assert observation.shape == (env.observation_size,) and observation.dtype == jnp.float32


def test_a_locomotion_task_without_its_robot_models_is_refused_naming_them():
    from mujoco_playground._src import mjx_env

    if mjx_env.MENAGERIE_PATH.exists():
        pytest.skip("MuJoCo Menagerie is present here")
    locomotion = next(name for name in pa.playground_names() if name.startswith("Go1"))
    with pytest.raises(ConfigError, match="Menagerie"):
        registry.make_env(locomotion).observation_size


def test_a_missing_playground_is_a_config_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mujoco_playground", None)  # makes the import fail
    with pytest.raises(ConfigError, match=r"fluxrl\[playground\]"):
        pa._load.__wrapped__("CartpoleBalance")


@pytest.mark.slow
def test_a_task_first_loaded_while_tracing_stays_usable():
    pa._load.cache_clear()
    env = pa.PlaygroundEnv("PointMass")
    jax.make_jaxpr(lambda x: x * env.observation_size)(1.0)  # the first load happens here
    leaves = jax.tree.leaves(pa._load("PointMass").env.mjx_model)
    assert leaves and not any(isinstance(leaf, jax.core.Tracer) for leaf in leaves)


@pytest.mark.slow
def test_resets_are_flat_float32_and_differ_between_keys(cartpole):
    env, (reset_observation, _, _) = cartpole
    assert reset_observation.shape == (2, env.observation_size) and reset_observation.dtype == jnp.float32
    assert not np.allclose(reset_observation[0], reset_observation[1])


@pytest.mark.slow
def test_the_time_limit_truncates_and_returns_to_the_first_start(cartpole):
    _, (_, steps, first_observation) = cartpole
    truncated, observation, final = (np.asarray(x)[:, 0] for x in (steps.truncated, steps.observation,
                                                                   steps.final_observation))
    assert truncated.tolist() == [False, False, True, False, False]
    assert not np.asarray(steps.terminated)[:, :3].any()
    assert np.asarray(steps.state)[:, 0].tolist() == [1, 2, 0, 1, 2]  # the step counter restarts
    # Before the cut the next observation is the one reached; at the cut it is the environment's first one.
    np.testing.assert_array_equal(observation[:2], final[:2])
    np.testing.assert_array_equal(observation[2], first_observation)
    assert not np.allclose(final[2], first_observation)
    rewards = np.asarray(steps.reward)[:, :3]
    assert np.all(rewards >= 0.0) and np.all(rewards <= 1.0)  # DM Control's rewards lie in [0, 1]


@pytest.mark.slow
def test_actions_are_clipped_to_the_native_range(cartpole):
    _, (_, steps, _) = cartpole
    observation = np.asarray(steps.final_observation)
    np.testing.assert_array_equal(observation[:, 1], observation[:, 0])  # 7 acts as 1
    assert not np.allclose(observation[:, 2], observation[:, 0])  # 0.5 does not


@pytest.mark.slow
def test_diverged_physics_terminates_with_finite_outputs_and_restarts(cartpole):
    _, (_, steps, first_observation) = cartpole
    assert np.asarray(steps.terminated)[:, 3].tolist() == [True, False, False, False, False]
    assert np.asarray(steps.truncated)[:, 3].tolist() == [False, False, False, True, False]
    for field in (steps.observation, steps.final_observation, steps.reward):
        assert np.all(np.isfinite(np.asarray(field)))
    assert float(steps.reward[0, 3]) == 0.0 and np.all(np.asarray(steps.final_observation[0, 3]) == 0.0)
    np.testing.assert_array_equal(steps.observation[0, 3], first_observation)


@pytest.mark.slow
def test_fresh_resets_draw_a_new_start_at_every_reset():
    env = pa.PlaygroundEnv("CartpoleSwingup", fresh_resets=True)
    _, steps, first_observation = jax.jit(lambda key: _scenario(env, key))(jax.random.PRNGKey(1))
    observation = np.asarray(steps.observation)
    assert np.asarray(steps.truncated)[2, 0] and np.asarray(steps.terminated)[0, 3]
    for row, column in ((2, 0), (2, 1), (0, 3)):
        assert not np.allclose(observation[row, column], first_observation)
        assert np.all(np.isfinite(observation[row, column]))
    assert not np.allclose(observation[2, 0], observation[2, 2])  # each environment's key draws its own start


@pytest.mark.slow
def test_ppo_trains_on_a_task_inside_the_runner(tmp_path, monkeypatch):
    from fluxrl.core.runner import RunConfig, run
    from fluxrl.onpolicy import ppo

    monkeypatch.setitem(registry.ENVS, "dmc-cartpole-swingup", pa.PLAYGROUND_ENVS["dmc-cartpole-swingup"])
    config = ppo.PPOConfig(env="dmc-cartpole-swingup", num_envs=4, num_steps=250, epochs=1, minibatches=1,
                           actor_hidden=(8,), critic_hidden=(8,))
    run_config = RunConfig(iterations=4, out=str(tmp_path / "run"), log_every=1, eval_every=4,
                           checkpoint_every=4, progress=False)
    result = run(ppo.ALGORITHM, config, run_config)
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    header, last = rows[0].split(","), dict(zip(rows[0].split(","), rows[-1].split(",")))
    assert "episode_return" in header and float(last["env_steps"]) == 4000  # 4 iterations of 4 x 250 steps
    # The four 1000-step episodes end together in the fourth rollout; DM Control's rewards lie in [0, 1].
    assert float(last["episodes_ended"]) == 4 and float(last["episode_length"]) == 1000.0
    assert 0.0 < float(last["episode_return"]) <= 1000.0
    assert int(result.state.iteration[0]) == 4
