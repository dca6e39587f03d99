"""Hypergrid: walk on {0..H-1}^D by incrementing one coordinate at a time, then exit (Bengio et al. 2021)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fluxrl.core.config import ConfigError, check_range
from fluxrl.envs.gflownet.base import MAX_ENUMERABLE_STATES

REWARD_PRESETS = {
    "standard": (1e-3, 0.5, 2.0),
    "hard": (1e-4, 1.0, 3.0),
}


class HypergridState(NamedTuple):
    """Grid coordinates and whether the exit action has been taken."""

    coords: jax.Array
    terminated: jax.Array


class HypergridParams(NamedTuple):
    """Reward R(s) = r0 + r1 * [outer band] + r2 * [inner ring], per the reference formula."""

    r0: float
    r1: float
    r2: float


def hypergrid_params(reward: str = "standard", r0: float | None = None, r1: float | None = None,
                     r2: float | None = None) -> HypergridParams:
    """Reward parameters from a preset name, with any of r0, r1, r2 overriding it."""
    if reward not in REWARD_PRESETS:
        raise ConfigError(f"reward must be one of {', '.join(REWARD_PRESETS)}, got {reward!r}.")
    base = REWARD_PRESETS[reward]
    values = tuple(float(b if v is None else v) for b, v in zip(base, (r0, r1, r2)))
    check_range("r0", values[0], 0.0, low_open=True)
    check_range("r1", values[1], 0.0)
    check_range("r2", values[2], 0.0)
    return HypergridParams(*values)


@dataclass(frozen=True)
class Hypergrid:
    """A D-dimensional grid of side H; action d < D increments coordinate d, action D exits.

    Every hypergrid is small enough for exact metrics: H**D may not exceed MAX_ENUMERABLE_STATES."""

    ndim: int = 2
    height: int = 8

    def __post_init__(self):
        if not isinstance(self.ndim, int) or self.ndim < 1:
            raise ConfigError(f"ndim must be an integer >= 1, got {self.ndim}.")
        if not isinstance(self.height, int) or self.height < 2:
            raise ConfigError(f"height must be an integer >= 2, got {self.height}.")
        if self.height**self.ndim > MAX_ENUMERABLE_STATES:
            raise ConfigError(f"height**ndim must be <= {MAX_ENUMERABLE_STATES}, the most states exact evaluation "
                              f"enumerates, got {self.height**self.ndim}.")

    @property
    def num_actions(self) -> int:
        return self.ndim + 1

    @property
    def num_backward_actions(self) -> int:
        return self.ndim

    @property
    def exit_action(self) -> int:
        return self.ndim

    @property
    def max_length(self) -> int:
        return self.ndim * (self.height - 1) + 1

    @property
    def obs_size(self) -> int:
        return self.ndim * self.height

    @property
    def num_states(self) -> int:
        return self.height**self.ndim

    def default_params(self) -> HypergridParams:
        """The 'standard' reward preset."""
        return hypergrid_params("standard")

    def reset(self, params: HypergridParams, key: jax.Array) -> HypergridState:
        """The origin, not yet terminated."""
        del params, key
        return HypergridState(jnp.zeros(self.ndim, jnp.int32), jnp.array(False))

    def forward_mask(self, state: HypergridState) -> jax.Array:
        """Increments that stay on the grid, and exit; nothing after termination."""
        increments = state.coords < self.height - 1
        return jnp.append(increments, True) & ~state.terminated

    def backward_mask(self, state: HypergridState) -> jax.Array:
        """Decrements that stay on the grid."""
        return state.coords > 0

    def step(self, state: HypergridState, action: jax.Array) -> HypergridState:
        """Increment coordinate `action`, or mark terminated when `action` is the exit."""
        is_exit = action == self.exit_action
        increment = jax.nn.one_hot(action, self.ndim, dtype=jnp.int32) * ~is_exit
        return HypergridState(state.coords + increment, state.terminated | is_exit)

    def backward_step(self, state: HypergridState, backward_action: jax.Array) -> HypergridState:
        """Decrement coordinate `backward_action`."""
        decrement = jax.nn.one_hot(backward_action, self.ndim, dtype=jnp.int32)
        return HypergridState(state.coords - decrement, jnp.array(False))

    def backward_action(self, state: HypergridState, action: jax.Array) -> jax.Array:
        """The decrement that undoes increment `action` (undefined for exit, whose P_B is 1)."""
        del state
        return jnp.minimum(action, self.ndim - 1)

    def is_terminal(self, state: HypergridState) -> jax.Array:
        """Whether the exit action has been taken."""
        return state.terminated

    def log_reward(self, params: HypergridParams, state: HypergridState) -> jax.Array:
        """log R of the grid cell, with R from the reference formula."""
        outer, inner = (jnp.asarray(band) for band in self._bands())
        return jnp.log(params.r0 + params.r1 * jnp.all(outer[state.coords])
                       + params.r2 * jnp.all(inner[state.coords]))

    def _bands(self) -> tuple[np.ndarray, np.ndarray]:
        """Per coordinate value s: (0.25 < d <= 0.5, 0.3 < d < 0.4) with d = |s / (H - 1) - 0.5|.

        Decided in integers (d = |2s - (H - 1)| / (2 (H - 1))), so cells exactly on a boundary, such as
        s / (H - 1) = 0.2 when H = 16, are classified exactly rather than by rounding."""
        span = self.height - 1
        offset = np.abs(2 * np.arange(self.height) - span)
        return 2 * offset > span, (5 * offset > 3 * span) & (5 * offset < 4 * span)

    def obs(self, state: HypergridState) -> jax.Array:
        """One-hot encoding of each coordinate, concatenated."""
        return jax.nn.one_hot(state.coords, self.height).reshape(-1)

    def obs_hot_indices(self, state: HypergridState) -> jax.Array:
        """Positions of the ones in `obs(state)`, so a linear layer on it can add up weight columns instead."""
        return state.coords + self.height * jnp.arange(self.ndim, dtype=jnp.int32)

    def all_states(self) -> HypergridState:
        """Every cell as a non-terminated state, in row-major order of its coordinates."""
        grids = np.indices((self.height,) * self.ndim).reshape(self.ndim, -1).T
        return HypergridState(jnp.asarray(grids, jnp.int32), jnp.zeros(len(grids), bool))

    def terminal_states(self) -> HypergridState:
        """Every cell after the exit action, in row-major order."""
        return self.all_states()._replace(terminated=jnp.ones(self.num_states, bool))

    @property
    def num_modes(self) -> int:
        return len(self._ring()) ** self.ndim

    def _ring(self) -> tuple[int, ...]:
        """Coordinate values inside the high-reward ring, 0.3 < |s / (H - 1) - 0.5| < 0.4."""
        return tuple(int(v) for v in np.flatnonzero(self._bands()[1]))

    def mode_hits(self, params: HypergridParams, state: HypergridState) -> jax.Array:
        """One-hot over the modes (cells whose every coordinate is in the ring) for the cell `state` is on."""
        del params
        ring = self._ring()
        rank = np.full(self.height, -1)
        rank[list(ring)] = np.arange(len(ring))
        ranks = jnp.asarray(rank)[state.coords]
        index = jnp.sum(ranks * len(ring) ** jnp.arange(self.ndim - 1, -1, -1))
        index = jnp.where(jnp.all(ranks >= 0), index, self.num_modes)
        return jnp.arange(self.num_modes) == index

    def state_index(self, state: HypergridState) -> jax.Array:
        """Row-major index of the cell."""
        strides = self.height ** jnp.arange(self.ndim - 1, -1, -1)
        return jnp.sum(state.coords * strides, axis=-1)
