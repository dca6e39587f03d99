"""gymnax continuous-control environments behind the `ControlEnv` interface of `base.py`.

gymnax 1.x's `Environment.step(key, state, action, params)` returns six values, `(observation, state, reward,
terminated, truncated, info)`, with the automatic reset already done: `observation` and `state` belong to the new
episode when the old one ended, and `info["final_observation"]` is the observation the old one ended in
(`gymnax/environments/environment.py`, `Environment.step`). `truncated` is `state.time >= max_steps_in_episode`,
`terminated` the environment's own end (Pendulum-v1 never has one; MountainCarContinuous-v0 at the goal). gymnax can
return both on one step; here a step that terminates is never also truncated, since there is nothing to bootstrap.

Actions: ours are in [-1, 1]^action_size (clipped there first) and are mapped affinely onto the environment's
action box `[low, high]`, read from `params`, so Pendulum-v1's torque is 2 a and MountainCarContinuous-v0's force a.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fluxrl.core.config import ConfigError
from fluxrl.envs.control.base import Step

# fluxrl's names of the gymnax environments it registers (`fluxrl.envs.control.registry.ENVS`), and gymnax's ids.
GYMNAX_ENVS = {"pendulum": "Pendulum-v1", "mountaincar-continuous": "MountainCarContinuous-v0"}


@lru_cache(maxsize=None)
def _make(env_id: str) -> tuple[Any, Any]:
    """gymnax's (environment, default params) of `env_id`, made once per process."""
    # Imported here: gymnax (and flax under it) costs a second or two to import, paid only by runs that use it.
    import gymnax

    return gymnax.make(env_id)


class GymnaxEnv:
    """One gymnax environment with a Box action space, as a `ControlEnv`."""

    def __init__(self, env_id: str):
        self.env_id = env_id
        self.env, params = _make(env_id)
        self.observation_size = int(self.env.observation_space(params).shape[0])
        self.action_size = int(self.env.action_space(params).shape[0])

    def default_params(self) -> Any:
        """gymnax's default parameters, every leaf an array (so they are traced, not folded into the program)."""
        return jax.tree.map(jnp.asarray, _make(self.env_id)[1])

    def env_action(self, action: jax.Array, params: Any) -> jax.Array:
        """The environment's action for ours: [-1, 1] onto [low, high] of its action box."""
        space = self.env.action_space(params)
        low, high = jnp.asarray(space.low, jnp.float32), jnp.asarray(space.high, jnp.float32)
        return low + 0.5 * (jnp.clip(action, -1.0, 1.0) + 1.0) * (high - low)

    def reset(self, key: jax.Array, params: Any) -> tuple[jax.Array, Any]:
        """gymnax's reset."""
        return self.env.reset(key, params)

    def step(self, key: jax.Array, state: Any, action: jax.Array, params: Any) -> Step:
        """gymnax's step with its automatic reset; truncated only when not also terminated."""
        observation, state, reward, terminated, truncated, info = self.env.step(
            key, state, self.env_action(action, params), params)
        terminated = jnp.asarray(terminated, bool)
        truncated = jnp.asarray(truncated, bool) & ~terminated
        return Step(observation, state, jnp.asarray(reward, jnp.float32), terminated, truncated,
                    info["final_observation"])

    def render(self, state: Any, params: Any) -> np.ndarray:
        """An RGB image [200, 200, 3] of the state, for videos: Pendulum-v1 (the rod, upright at angle 0) and
        MountainCarContinuous-v0 (the hill and the car); ConfigError for gymnax tasks without a drawing."""
        from PIL import Image, ImageDraw

        image = Image.new("RGB", (200, 200), (255, 255, 255))
        draw = ImageDraw.Draw(image)
        if self.env_id == "Pendulum-v1":
            theta = float(state.theta)
            tip = (100 - 80 * np.sin(theta), 100 - 80 * np.cos(theta))  # image rows grow downwards
            draw.line([(100, 100), tip], fill=(204, 77, 77), width=12)
            draw.ellipse([94, 94, 106, 106], fill=(0, 0, 0))
        elif self.env_id == "MountainCarContinuous-v0":
            def to_pixels(x: float) -> tuple[float, float]:  # position on the track -> (column, row) of the hill
                return float((x + 1.2) / 1.8 * 180 + 10), float(190 - (np.sin(3 * x) * 0.45 + 0.55) * 150)

            xs = np.linspace(-1.2, 0.6, 100)
            draw.line([to_pixels(x) for x in xs], fill=(0, 0, 0), width=2)
            draw.line([to_pixels(0.45)[0], 10, to_pixels(0.45)[0], 40], fill=(42, 157, 143), width=3)  # the flag
            x, y = to_pixels(float(state.position))
            draw.ellipse([x - 8, y - 16, x + 8, y], fill=(38, 70, 83))
        else:
            raise ConfigError(f"{self.env_id} has no drawing for videos (Pendulum-v1 and MountainCarContinuous-v0 "
                              "have).")
        return np.asarray(image)
