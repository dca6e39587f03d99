"""A tiny algorithm for sweep tests: the toy's noisy gradient descent (`tests/toy.py`), its config declaring its
traced fields.

`dim` is static (a shape), `lr` and `noise` are traced; `clip` is used in a Python `if`, so it must stay static
even though it is a number; `explode` makes host-side evaluation raise, for a failing trial. A test may set
`KILL` to interrupt a run of a given `dim` at a given iteration, as a kill would.
"""

from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp

from fluxrl.core.config import check_range
from fluxrl.core.runner import Algorithm
from toy import ToyState as TinyState
from toy import evaluate, init, make_data

KILL: dict = {}  # {"dim": D, "iteration": I}: a KeyboardInterrupt in the evaluation of that run at that iteration


@dataclass(frozen=True)
class TinyConfig:
    """Noisy gradient descent on |w - target|^2."""

    TRACED_FIELDS: ClassVar[tuple[str, ...]] = ("lr", "noise")

    dim: int = 3
    lr: float = 0.1
    noise: float = 0.5
    clip: float = 0.0
    explode: bool = False

    def __post_init__(self):
        check_range("dim", self.dim, 1)
        check_range("lr", self.lr, 0.0, low_open=True)


def update(config: TinyConfig, data: dict, state: TinyState) -> tuple[TinyState, dict]:
    """One noisy gradient step."""
    key, noise_key = jax.random.split(state.key)
    gradient = state.w - data["target"] + config.noise * jax.random.normal(noise_key, (config.dim,))
    if config.clip > 0:  # a Python branch: `clip` cannot be traced
        gradient = jnp.clip(gradient, -config.clip, config.clip)
    w = state.w - config.lr * gradient
    return TinyState(w, key, state.iteration + 1), {"loss": jnp.sum((w - data["target"]) ** 2)}


def evaluate_host(config: TinyConfig, data: dict, state: TinyState, key) -> dict:
    """The first weight; raises when the config says so, or when KILL names this run and iteration."""
    if config.explode:
        raise RuntimeError("the tiny algorithm exploded on purpose")
    if KILL and KILL["dim"] == config.dim and int(state.iteration) == KILL["iteration"]:
        raise KeyboardInterrupt
    return {"first_weight": float(state.w[0])}


TINY = Algorithm(name="tiny", config_type=TinyConfig, init=init, update=update, make_data=make_data,
                 evaluate=evaluate, evaluate_host=evaluate_host)
