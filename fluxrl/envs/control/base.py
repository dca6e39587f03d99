"""What every pure-JAX control environment gives the on-policy family: gymnax's functional interface, with the
episode's end split into termination and truncation and the automatic reset made explicit.

`reset(key, params) -> (observation, state)` and `step(key, state, action, params) -> Step`. A step that ends an
episode resets it inside the same call: `observation` and `state` are those of the new episode, and
`final_observation` is the observation the old episode ended in, which a learner needs to bootstrap the value at a
time limit (truncated, not terminated). Actions are float vectors in [-1, 1]^action_size; an environment maps them
to its own bounds.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import jax


class Step(NamedTuple):
    """One environment step of one environment (leaves batched when vmapped)."""

    observation: jax.Array  # of the next state, or of the new episode's first state after an automatic reset
    state: Any
    reward: jax.Array
    terminated: jax.Array  # the episode ended in a terminal state: no value to bootstrap
    truncated: jax.Array  # the episode hit its time limit: bootstrap from final_observation
    final_observation: jax.Array  # the observation the step reached, before any automatic reset


class ControlEnv(Protocol):
    """A functional control environment: static sizes on the object, everything traced in `params` / `state`."""

    observation_size: int
    action_size: int

    def default_params(self) -> Any:
        """The environment's parameters (a pytree of arrays)."""

    def reset(self, key: jax.Array, params: Any) -> tuple[jax.Array, Any]:
        """(first observation, state) of a new episode."""

    def step(self, key: jax.Array, state: Any, action: jax.Array, params: Any) -> Step:
        """One step, resetting automatically when the episode ends."""
