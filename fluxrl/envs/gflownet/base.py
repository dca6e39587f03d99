"""The DAG environment protocol shared by every GFlowNet environment.

A DAG environment is a frozen dataclass holding only static facts (sizes), whose methods are pure JAX
functions over a state pytree. Reward parameters live in a separate `params` pytree so one compiled program
serves many reward settings.

Conventions every environment follows:
- A trajectory is s_0 -> s_1 -> ... -> s_n, where s_n has `terminated == True`. An environment either has an
  explicit exit action (`exit_action >= 0`: the state is copied and marked terminated, and the backward
  probability of that edge is 1), or terminates by construction (`exit_action == -1`: the last regular step
  lands in a terminated state, e.g. a filled bit sequence).
- `log_reward(params, state)` is read on the terminated state; it holds the object x.
- Every method takes and returns a single unbatched state; vmap for batches.
"""

from __future__ import annotations

from typing import Any, Protocol

import jax
import jax.numpy as jnp

State = Any
Params = Any


class DAGEnv(Protocol):
    """What a GFlowNet environment provides; see the module docstring for conventions."""

    num_actions: int
    num_backward_actions: int
    max_length: int
    exit_action: int
    obs_size: int

    def default_params(self) -> Params: ...
    def reset(self, params: Params, key: jax.Array) -> State: ...
    def forward_mask(self, state: State) -> jax.Array: ...
    def backward_mask(self, state: State) -> jax.Array: ...
    def step(self, state: State, action: jax.Array) -> State: ...
    def backward_step(self, state: State, backward_action: jax.Array) -> State: ...
    def backward_action(self, state: State, action: jax.Array) -> jax.Array: ...
    def is_terminal(self, state: State) -> jax.Array: ...
    def log_reward(self, params: Params, state: State) -> jax.Array: ...
    def obs(self, state: State) -> jax.Array: ...


# The most states exact metrics enumerate: evaluation skips larger environments, and an environment that
# promises exact metrics (the hypergrid) refuses to be built larger.
MAX_ENUMERABLE_STATES = 2_000_000


class EnumerableDAGEnv(DAGEnv, Protocol):
    """A DAG environment small enough to list its states, so metrics can be exact.

    `all_states()` lists every state a policy acts in (it may also hold terminated states, which have no valid
    action); `terminal_states()` lists every terminal object x; `state_index` maps both into one index space
    of size `num_states`, in which exact distributions are indexed."""

    num_states: int

    def all_states(self) -> State: ...
    def state_index(self, state: State) -> jax.Array: ...


def is_enumerable(env: Any) -> bool:
    """Whether `env` can list all its states (and so supports exact metrics)."""
    return hasattr(env, "all_states") and hasattr(env, "state_index")


def uniform_log_pb(env: DAGEnv, next_state: State) -> jax.Array:
    """Log-probability of any parent under the uniform backward policy at `next_state`."""
    num_parents = jnp.sum(env.backward_mask(next_state))
    return -jnp.log(jnp.maximum(num_parents, 1).astype(jnp.float32))
