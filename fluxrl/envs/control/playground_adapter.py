"""MuJoCo Playground's DeepMind Control Suite tasks (Zakka et al. 2025) behind fluxrl's control interface.

Playground's DM-Control tasks are MJX environments written in JAX, so with `impl="jax"` a whole on-policy run,
rollouts included, stays one jitted program (`fluxrl.onpolicy.rollout`). They are an optional extra:
`pip install 'fluxrl[playground]'`; this module imports `mujoco_playground` only when a task is made. Their models
ship inside the package, so they load offline; the locomotion and manipulation suites, which clone robot assets
on first use, are never touched.

What the adapter adds to a Playground task (`mujoco_playground/_src/dm_control_suite/*.py`):
- the time limit: Playground's tasks never end an episode by themselves (their `done` is set only when the
  physics produces NaN); its training wrappers (brax `EpisodeWrapper`) cut episodes at the config's
  `episode_length`, 1000 control steps in every task, and mark that cut `truncation`. Here the cut counts steps in
  the state and is `truncated`, and the learner's `time_limit` decides what follows: bootstrap from
  `final_observation` (fluxrl's default) or zero the step's TD error, advantage and value loss, as the FPO reference
  does (`playground/src/flow_policy/rollouts.py`, lines 229-233 and 304-329; `time_limit="zero"`);
- termination: only when the physics diverges (Playground's `done`, or any non-finite observation or reward).
  Such a step's reward and final observation are zeroed, so a learner multiplying them by "not terminated" gets
  zeros, not NaN, and the episode restarts;
- the automatic reset returns an environment to the initial state it drew at its first reset, as the FPO
  reference does (rollouts.py, lines 246-268): the starts of a run are then the num_envs states drawn at its
  beginning. A reset inside a jitted, vmapped step is computed on every step whether or not an episode ends, and
  CheetahRun's reset lets the model settle for 200 physics steps (cheetah.py, `reset`), which would make every
  step cost ~200. `fresh_resets=True` draws a new initial state from the step's key instead, as dm_control does;
  on the tasks without a settling phase that costs ~1.3x the plain step;
- actions: DM-Control's native range [-1, 1] (every task's `ctrlrange`), clipped there; observations: flat float32.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from fluxrl.core.config import ConfigError
from fluxrl.envs.control.base import ControlEnv, Step

# fluxrl name -> Playground name; each loads offline with impl="jax" (DM Control's models ship in the package).
# The rest of Playground's DM Control (Humanoid, Fish, Swimmer, the sparse variants) loads too; it is left out
# only to keep the list to tasks a CPU run may use.
TASKS = {
    "dmc-acrobot-swingup": "AcrobotSwingup",
    "dmc-ball-in-cup": "BallInCup",
    "dmc-cartpole-balance": "CartpoleBalance",
    "dmc-cartpole-swingup": "CartpoleSwingup",
    "dmc-cheetah-run": "CheetahRun",
    "dmc-finger-spin": "FingerSpin",
    "dmc-hopper-stand": "HopperStand",
    "dmc-pendulum-swingup": "PendulumSwingup",
    "dmc-point-mass": "PointMass",
    "dmc-reacher-easy": "ReacherEasy",
    "dmc-walker-walk": "WalkerWalk",
}
INSTALL_HINT = "pip install 'fluxrl[playground]'"


class PlaygroundState(NamedTuple):
    """The Playground task's own state, the state its episodes start from, and the steps taken in this episode."""

    task: Any  # mujoco_playground.State: MJX data, observation, reward, done, metrics, info
    start: Any  # the mujoco_playground.State of the environment's first reset; None with fresh resets
    steps: jax.Array  # int32


class PlaygroundParams(NamedTuple):
    """What a run may change without recompiling: the episode's time limit."""

    max_steps: jax.Array  # int32


class _Loaded(NamedTuple):
    env: Any  # the mujoco_playground MjxEnv
    observation_size: int
    action_size: int
    episode_length: int
    observation_key: str | None  # the entry of a dict observation the policy sees ("state"), None when flat


def playground_names() -> tuple[str, ...]:
    """Every task Playground registers (DM Control, locomotion, manipulation); () when it is not installed."""
    if not available():
        return ()
    from mujoco_playground import registry

    return tuple(registry.ALL_ENVS)


@lru_cache(maxsize=None)
def _load(task: str) -> _Loaded:
    """The Playground task `task` on MJX's JAX backend, loaded once per process (a model load takes ~0.2 s and
    every algorithm function asks for its environment)."""
    try:
        from mujoco_playground import dm_control_suite, registry
        from mujoco_playground._src import mjx_env
    except ImportError:
        raise ConfigError(f"MuJoCo Playground is not installed; {INSTALL_HINT}.") from None
    if task not in dm_control_suite.ALL_ENVS and not mjx_env.MENAGERIE_PATH.exists():
        # Locomotion and manipulation tasks read robot models that Playground clones from GitHub on first use.
        raise ConfigError(f"{task} needs MuJoCo Menagerie's robot models, which Playground clones from GitHub the "
                          f"first time; clone github.com/google-deepmind/mujoco_menagerie into "
                          f"{mjx_env.MENAGERIE_PATH} (on a machine with network access) and run again.")
    # Playground's default backend is MuJoCo Warp (GPU); "jax" is MJX's pure-JAX one, which runs on the CPU. The
    # first load may happen while a jitted function is traced; the model's arrays must be concrete all the same,
    # or the cache would keep tracers.
    with jax.ensure_compile_time_eval():
        try:
            env = registry.load(task, config_overrides={"impl": "jax"})
        except Exception as error:  # Playground raises many kinds (missing assets, unknown config keys)
            raise ConfigError(f"Playground could not load {task} on MJX's JAX backend: {error}") from None
    config = env._config  # Playground exposes its config only as this attribute
    if config.action_repeat != 1:
        raise ConfigError(f"{task} repeats actions {config.action_repeat} times; the adapter steps once.")
    observation = jax.eval_shape(env.reset, jax.random.PRNGKey(0)).obs
    key = None
    if isinstance(observation, dict):  # locomotion: the policy's "state" beside the critic's privileged one
        key = "state" if "state" in observation else None
        observation = observation.get("state")
    if not hasattr(observation, "shape") or len(observation.shape) != 1:
        raise ConfigError(f"{task} has no flat observation vector (vision tasks are not supported).")
    return _Loaded(env, int(observation.shape[0]), int(env.action_size), int(config.episode_length), key)


def _observation(task: str, observation: Any) -> jax.Array:
    """The flat float32 observation the policy sees of a Playground observation (a vector or a dict of them)."""
    key = _load(task).observation_key
    return (observation if key is None else observation[key]).astype(jnp.float32)


def _finite(x: jax.Array) -> jax.Array:
    """Whether every entry of `x` is finite (a scalar bool)."""
    return jnp.all(jnp.isfinite(x))


@dataclass(frozen=True)
class PlaygroundEnv:
    """A MuJoCo Playground DM-Control task behind `ControlEnv`; its name is static, its time limit in params."""

    task: str = "CartpoleSwingup"
    """A Playground task name: DM Control's (e.g. 'CheetahRun', 'FishSwim'), or a locomotion or manipulation task
    (their robot models come from MuJoCo Menagerie, which Playground clones on first use)."""
    fresh_resets: bool = False
    """Draw a new initial state at every automatic reset (dm_control) instead of returning to the environment's
    first one (the FPO reference); see the module docstring for the cost."""

    def __post_init__(self):
        if self.task not in TASKS.values() and self.task not in playground_names():
            raise ConfigError(f"task must be a Playground task name, e.g. one of {', '.join(sorted(TASKS.values()))}"
                              f"{'' if available() else f' ({INSTALL_HINT} for all of them)'}, got {self.task!r}.")

    @property
    def observation_size(self) -> int:
        """Length of the flat observation vector."""
        return _load(self.task).observation_size

    @property
    def action_size(self) -> int:
        """Number of actuators, each driven by one action in [-1, 1]."""
        return _load(self.task).action_size

    def default_params(self) -> PlaygroundParams:
        """The task's own episode length (1000 control steps in every DM-Control task)."""
        return PlaygroundParams(jnp.asarray(_load(self.task).episode_length, jnp.int32))

    def reset(self, key: jax.Array, params: PlaygroundParams) -> tuple[jax.Array, PlaygroundState]:
        """A random initial state of the task, at step 0."""
        task = _load(self.task).env.reset(key)
        start = None if self.fresh_resets else task
        return _observation(self.task, task.obs), PlaygroundState(task, start, jnp.zeros((), jnp.int32))

    def step(self, key: jax.Array, state: PlaygroundState, action: jax.Array, params: PlaygroundParams) -> Step:
        """One control step; divergence terminates, step `max_steps` truncates, and either resets."""
        task = _load(self.task).env.step(state.task, jnp.clip(action, -1.0, 1.0))
        observation = _observation(self.task, task.obs)
        terminated = (task.done > 0) | ~_finite(observation) | ~_finite(task.reward)
        reward = jnp.where(terminated, 0.0, task.reward).astype(jnp.float32)
        final_observation = jnp.where(terminated, 0.0, observation)
        steps = state.steps + 1
        truncated = (steps >= params.max_steps) & ~terminated
        done = terminated | truncated
        if self.fresh_resets:
            reset_observation, reset_state = self.reset(key, params)
        else:
            reset_observation = _observation(self.task, state.start.obs)
            reset_state = PlaygroundState(state.start, state.start, jnp.zeros((), jnp.int32))
        next_state = jax.tree.map(lambda fresh, old: jnp.where(done, fresh, old), reset_state,
                                  PlaygroundState(task, state.start, steps))
        observation = jnp.where(done, reset_observation, final_observation)
        return Step(observation, next_state, reward, terminated, truncated, final_observation)

    def render(self, state: PlaygroundState, params: PlaygroundParams) -> Any:
        """An RGB image [240, 320, 3] of the state from Playground's own renderer (for videos; needs OpenGL, e.g.
        MUJOCO_GL=egl on a machine without a display)."""
        return _load(self.task).env.render([state.task], height=240, width=320)[0]


# Environments by fluxrl name, for `fluxrl.envs.control.registry.ENVS`; making one needs the playground extra.
PLAYGROUND_ENVS: dict[str, Callable[[], ControlEnv]] = {
    name: (lambda task=task: PlaygroundEnv(task)) for name, task in TASKS.items()}


def available() -> bool:
    """Whether MuJoCo Playground is installed (the tasks can be made); imports nothing."""
    return importlib.util.find_spec("mujoco_playground") is not None
