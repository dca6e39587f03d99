"""Vectorised Jumanji Snake with automatic resets: the environment of the meta-gradient study.

Jumanji's Snake (Bonnet et al. 2021, the environment's origin) observes a (rows, cols, 5) grid (body, head, tail,
fruit, normalised body order) and a mask of the 4 moves that stay on the board and off the body; a fruit gives +1.
An episode ends when the snake moves illegally, fills the board, or reaches the time limit; Jumanji gives every end
discount 0 (`termination` in `jumanji/environments/routing/snake/env.py`, `step`), and so does this adapter. A
finished environment is reset at once from the key it carries (as Jumanji's `AutoResetWrapper`), so a batch of
environments steps forever.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fluxrl.core.config import ConfigError

# name -> (rows, cols, time limit): Jumanji's Snake-v1 (12 x 12, 4000 steps) and the 6 x 6 board of the
# meta-gradient group's public results (Snake(num_rows=6, num_cols=6, time_limit=500)).
BOARDS = {"snake-6x6": (6, 6, 500), "snake-12x12": (12, 12, 4000)}
NUM_ACTIONS = 4


def check_name(name: str) -> None:
    """ConfigError naming the boards unless `name` is one of BOARDS."""
    if name not in BOARDS:
        raise ConfigError(f"env must be one of {', '.join(BOARDS)}, got {name!r}.")


@lru_cache(maxsize=None)
def make_env(name: str):
    """Jumanji's Snake for a board name in BOARDS; ConfigError naming the boards otherwise."""
    check_name(name)
    rows, cols, time_limit = BOARDS[name]
    # Jumanji makes arrays when its module is imported (Snake.MOVES) and when specs are built; done first inside a
    # jit trace (this is often called there), they would be tracers stored in the class and leaked.
    with jax.ensure_compile_time_eval():
        from jumanji.environments import Snake

        env = Snake(num_rows=rows, num_cols=cols, time_limit=time_limit)
        env.observation_spec, env.action_spec
    return env


def board_shape(name: str) -> tuple[int, int, int]:
    """The observation grid's shape (rows, cols, 5)."""
    check_name(name)
    rows, cols, _ = BOARDS[name]
    return rows, cols, 5


class Envs(NamedTuple):
    """A batch of environments: Jumanji states and their current observations."""

    state: Any
    grid: jax.Array  # [N, rows, cols, 5] float32
    mask: jax.Array  # [N, 4] bool: legal moves


def reset(name: str, key: jax.Array, num_envs: int) -> Envs:
    """`num_envs` fresh episodes."""
    env = make_env(name)
    state, timestep = jax.vmap(env.reset)(jax.random.split(key, num_envs))
    return Envs(state, timestep.observation.grid.astype(jnp.float32), timestep.observation.action_mask)


def step(name: str, envs: Envs, action: jax.Array) -> tuple[Envs, jax.Array, jax.Array]:
    """One step of every environment, a finished one reset from its own key: (envs, reward [N], done [N])."""
    env = make_env(name)

    def one(state, action):
        state, timestep = env.step(state, action)
        done = timestep.last()
        fresh_state, fresh = env.reset(state.key)
        state = jax.tree.map(lambda a, b: jnp.where(done, a, b), fresh_state, state)
        grid = jnp.where(done, fresh.observation.grid, timestep.observation.grid)
        mask = jnp.where(done, fresh.observation.action_mask, timestep.observation.action_mask)
        return state, grid, mask, timestep.reward, done

    state, grid, mask, reward, done = jax.vmap(one)(envs.state, action)
    return Envs(state, grid.astype(jnp.float32), mask), reward.astype(jnp.float32), done


def random_legal_action(key: jax.Array, mask: jax.Array) -> jax.Array:
    """A uniformly random legal move per environment (any move when none is legal)."""
    logits = jnp.where(mask | ~mask.any(-1, keepdims=True), 0.0, -jnp.inf)
    return jax.random.categorical(key, logits).astype(jnp.int32)


def random_play(name: str, num_envs: int, num_steps: int):
    """A jittable function of a key running `num_envs` environments `num_steps` steps under random legal moves;
    it returns the total reward (the environment's raw throughput, the benchmark's yardstick)."""
    def play(key):
        reset_key, key = jax.random.split(key)

        def body(carry, step_key):
            envs, total = carry
            envs, reward, _ = step(name, envs, random_legal_action(step_key, envs.mask))
            return (envs, total + reward.sum()), None

        (_, total), _ = jax.lax.scan(body, (reset(name, reset_key, num_envs), jnp.float32(0.0)),
                                     jax.random.split(key, num_steps))
        return total
    return play
