"""A test-only control environment: a point on a line that must move to a target (fluxrl's ControlEnv)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from fluxrl.envs.control.base import Step


class PointState(NamedTuple):
    """Position, target and steps taken in the episode."""

    position: jax.Array  # [1]
    target: jax.Array  # [1]
    time: jax.Array  # int32


class PointToTarget:
    """Observation (position, target), both drawn in [-1, 1]; the action in [-1, 1] moves the point by `speed`
    times it; reward -|position - target|; episodes are cut at `time_limit` steps (truncated) and, with
    `terminate_within`, end (terminated) once the point lies within that distance of the target."""

    observation_size = 2
    action_size = 1

    def __init__(self, time_limit: int = 50, speed: float = 0.2, terminate_within: float | None = None):
        self.time_limit, self.speed, self.terminate_within = time_limit, speed, terminate_within

    def default_params(self):
        """No parameters."""
        return None

    def reset(self, key, params):
        """A uniform position and target."""
        position, target = jnp.split(jax.random.uniform(key, (2,), minval=-1.0, maxval=1.0), 2)
        state = PointState(position, target, jnp.int32(0))
        return self._observation(state), state

    def step(self, key, state, action, params):
        """Move, score, and reset when the episode ends."""
        position = jnp.clip(state.position + self.speed * jnp.clip(action, -1.0, 1.0), -2.0, 2.0)
        moved = PointState(position, state.target, state.time + 1)
        distance = jnp.abs(position - state.target)[0]
        terminated = jnp.bool_(False) if self.terminate_within is None else distance < self.terminate_within
        truncated = (moved.time >= self.time_limit) & ~terminated
        done = terminated | truncated
        reset_observation, reset_state = self.reset(key, params)
        final_observation = self._observation(moved)
        state = jax.tree.map(lambda new, old: jnp.where(done, new, old), reset_state, moved)
        observation = jnp.where(done, reset_observation, final_observation)
        return Step(observation, state, -distance, terminated, truncated, final_observation)

    @staticmethod
    def _observation(state: PointState):
        return jnp.concatenate([state.position, state.target])
