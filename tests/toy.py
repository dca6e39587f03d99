"""A tiny algorithm in the runner contract: noisy gradient descent towards a target held in shared data."""

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from fluxrl.core.config import check_range
from fluxrl.core.runner import Algorithm


@dataclass(frozen=True)
class ToyConfig:
    """Noisy gradient descent on |w - target|^2."""

    dim: int = 3
    lr: float = 0.1
    noise: float = 0.5

    def __post_init__(self):
        check_range("dim", self.dim, 1)


class ToyState(NamedTuple):
    """Weights, key and iteration of one seed."""

    w: jax.Array
    key: jax.Array
    iteration: jax.Array


def make_data(config: ToyConfig) -> dict:
    """The target the weights move towards, shared by every seed."""
    return {"target": jnp.arange(config.dim, dtype=jnp.float32)}


def init(config: ToyConfig, data: dict, key: jax.Array) -> ToyState:
    """Weights at zero."""
    return ToyState(jnp.zeros(config.dim), key, jnp.int32(0))


def update(config: ToyConfig, data: dict, state: ToyState) -> tuple[ToyState, dict]:
    """One noisy gradient step; `step` is the iteration number, so row averages can be checked exactly."""
    key, noise_key = jax.random.split(state.key)
    gradient = state.w - data["target"] + config.noise * jax.random.normal(noise_key, (config.dim,))
    w = state.w - config.lr * gradient
    metrics = {"loss": jnp.sum((w - data["target"]) ** 2), "step": (state.iteration + 1).astype(jnp.float32),
               "updates": (state.iteration + 1).astype(jnp.float32)}
    return ToyState(w, key, state.iteration + 1), metrics


def evaluate(config: ToyConfig, data: dict, state: ToyState, key: jax.Array) -> dict:
    """Distance to the target, in jit."""
    return {"distance": jnp.linalg.norm(state.w - data["target"])}


def evaluate_host(config: ToyConfig, data: dict, state: ToyState, key) -> dict:
    """The first weight, host-side."""
    return {"first_weight": float(state.w[0])}


TOY = Algorithm(name="toy", config_type=ToyConfig, init=init, update=update, make_data=make_data,
                evaluate=evaluate, evaluate_host=evaluate_host, progress_metrics=("loss",), counters=("updates",),
                throughput_unit="steps", work_per_iteration=lambda config: 2)
