"""Jumanji Snake behind the control-env interface, in its discrete form: the environment of the meta-gradients.

Jumanji's Snake (Bonnet et al. 2021, the environment's origin) observes a (rows, cols, 5) grid (body, head, tail,
fruit, normalised body order) and a mask of the 4 moves that stay on the board and off the body; a fruit gives +1.
An episode ends when the snake moves illegally, fills the board, or reaches the time limit; Jumanji gives every end
discount 0 (`termination` in `jumanji/environments/routing/snake/env.py`, `step`), so every end is `terminated`
here. `Snake` keeps the interface of `fluxrl.envs.control.base` (`reset(key, params)`, `step(key, state, action,
params) -> Step`, automatic reset inside the step), with an integer action in [0, num_actions) and a `Board`
(grid and action mask) for an observation. A finished episode restarts from the key Jumanji's state carries (as
its `AutoResetWrapper`), so the step's own key is not used and a batch of environments steps forever.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fluxrl.core.config import ConfigError
from fluxrl.envs.control.base import Step

# name -> (rows, cols, time limit): Jumanji's Snake-v1 (12 x 12, 4000 steps) and the 6 x 6 board of the
# meta-gradient group's public results (Snake(num_rows=6, num_cols=6, time_limit=500)).
BOARDS = {"snake-6x6": (6, 6, 500), "snake-12x12": (12, 12, 4000)}
NUM_ACTIONS = 4


def check_name(name: str) -> None:
    """ConfigError naming the boards unless `name` is one of BOARDS."""
    if name not in BOARDS:
        raise ConfigError(f"env must be one of {', '.join(BOARDS)}, got {name!r}.")


@lru_cache(maxsize=None)
def jumanji_env(name: str):
    """Jumanji's own Snake for a board name in BOARDS; ConfigError naming the boards otherwise."""
    check_name(name)
    rows, cols, time_limit = BOARDS[name]
    # Jumanji makes arrays when its module is imported (Snake.MOVES) and when specs are built; done first inside a
    # jit trace (this is often called there), they would be tracers stored in the class and leaked.
    with jax.ensure_compile_time_eval():
        from jumanji.environments import Snake as JumanjiSnake

        env = JumanjiSnake(num_rows=rows, num_cols=cols, time_limit=time_limit)
        env.observation_spec, env.action_spec
    return env


def board_shape(name: str) -> tuple[int, int, int]:
    """The observation grid's shape (rows, cols, 5)."""
    check_name(name)
    rows, cols, _ = BOARDS[name]
    return rows, cols, 5


class Board(NamedTuple):
    """A Snake observation (leaves batched when vmapped), named as Jumanji names its fields."""

    grid: jax.Array  # [rows, cols, 5] float32
    action_mask: jax.Array  # [4] bool: legal moves


def _board(observation: Any) -> Board:
    return Board(observation.grid.astype(jnp.float32), observation.action_mask)


class Snake:
    """One Snake board as a discrete control env: static sizes on the object, the Jumanji state traced."""

    num_actions = NUM_ACTIONS

    def __init__(self, name: str):
        self.name = name
        self.observation_shape = board_shape(name)

    def default_params(self) -> tuple:
        """No parameters: the board is fixed by its name."""
        return ()

    def reset(self, key: jax.Array, params: Any = ()) -> tuple[Board, Any]:
        """(first observation, state) of a new episode."""
        state, timestep = jumanji_env(self.name).reset(key)
        return _board(timestep.observation), state

    def step(self, key: jax.Array, state: Any, action: jax.Array, params: Any = ()) -> Step:
        """One move; an episode that ends restarts from the key its state carries (`key` is not used)."""
        env = jumanji_env(self.name)
        state, timestep = env.step(state, action)
        done = timestep.last()
        fresh_state, fresh = env.reset(state.key)
        reached = _board(timestep.observation)
        observation = jax.tree.map(lambda a, b: jnp.where(done, a, b), _board(fresh.observation), reached)
        state = jax.tree.map(lambda a, b: jnp.where(done, a, b), fresh_state, state)
        return Step(observation, state, timestep.reward.astype(jnp.float32), done, jnp.zeros_like(done), reached)


def reset_batch(env: Snake, key: jax.Array, num_envs: int) -> tuple[Board, Any]:
    """`num_envs` fresh episodes: (observations, states), leaves [num_envs, ...]."""
    return jax.vmap(env.reset, (0, None))(jax.random.split(key, num_envs), env.default_params())


def step_batch(env: Snake, key: jax.Array, state: Any, action: jax.Array) -> Step:
    """One move of every environment of a batch (the key is passed on, unused, as the interface has it)."""
    return jax.vmap(env.step, (None, 0, 0, None))(key, state, action, env.default_params())


def random_legal_action(key: jax.Array, mask: jax.Array) -> jax.Array:
    """A uniformly random legal move per environment (any move when none is legal)."""
    logits = jnp.where(mask | ~mask.any(-1, keepdims=True), 0.0, -jnp.inf)
    return jax.random.categorical(key, logits).astype(jnp.int32)


def random_play(name: str, num_envs: int, num_steps: int):
    """A jittable function of a key running `num_envs` environments `num_steps` steps under random legal moves;
    it returns the total reward (the environment's raw throughput, the benchmark's yardstick)."""
    env = Snake(name)

    def play(key):
        reset_key, key = jax.random.split(key)

        def body(carry, step_key):
            (observation, state), total = carry
            out = step_batch(env, step_key, state, random_legal_action(step_key, observation.action_mask))
            return ((out.observation, out.state), total + out.reward.sum()), None

        (_, total), _ = jax.lax.scan(body, (reset_batch(env, reset_key, num_envs), jnp.float32(0.0)),
                                     jax.random.split(key, num_steps))
        return total
    return play
