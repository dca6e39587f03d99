"""Behaviour cloning, CORL's any-percent BC on the whole dataset: a deterministic tanh actor regressed on the
dataset's actions by mean squared error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import optax

from fluxrl.core.config import check_range
from fluxrl.core.nets import MLP
from fluxrl.core.runner import Algorithm
from fluxrl.offline.common import OfflineData, apply_gradients, host_evaluator, network, sample_batch


@dataclass(frozen=True)
class BCConfig:
    """Behaviour cloning with CORL's defaults (2x256 ReLU MLP, Adam 3e-4, batch 256)."""

    # Swept, these become one vmapped axis of a compiled program (`fluxrl.sweep.traced`): the learning rate enters
    # Adam's step only.
    TRACED_FIELDS: ClassVar[tuple[str, ...]] = ("lr",)

    batch_size: int = 256
    """Transitions per update."""
    hidden: int = 256
    """Units per hidden layer of the actor."""
    depth: int = 2
    """Hidden layers of the actor."""
    lr: float = 3e-4
    """Adam learning rate (> 0)."""

    def __post_init__(self):
        for name in ("batch_size", "hidden", "depth"):
            check_range(name, getattr(self, name), 1)
        check_range("lr", self.lr, 0.0, low_open=True)


class BCState(NamedTuple):
    """The actor, its Adam state and the key of one seed."""

    actor: MLP
    actor_opt: optax.OptState
    key: jax.Array


def optimizer(config: BCConfig) -> optax.GradientTransformation:
    """Adam on the actor."""
    return optax.adam(config.lr)


def act(config: BCConfig, actor: MLP, observations: jax.Array, max_action: float = 1.0) -> jax.Array:
    """The policy max_action * tanh(actor(s)) of (normalised) observations."""
    return max_action * jnp.tanh(actor(observations))


def init(config: BCConfig, data: OfflineData, key: jax.Array) -> BCState:
    """A fresh actor and Adam state."""
    actor_key, key = jax.random.split(key)
    actor = network(data.obs_dim, data.action_dim, config.hidden, config.depth, actor_key)
    return BCState(actor, optimizer(config).init(actor), key)


def update(config: BCConfig, data: OfflineData, state: BCState) -> tuple[BCState, dict]:
    """One Adam step on mean((pi(s) - a)^2) over a minibatch."""
    key, batch_key = jax.random.split(state.key)
    batch = sample_batch(data, batch_key, config.batch_size)

    def loss(actor):
        return jnp.mean((act(config, actor, batch.observations, data.max_action) - batch.actions) ** 2)

    value, grads = jax.value_and_grad(loss)(state.actor)
    actor, actor_opt = apply_gradients(optimizer(config), state.actor, state.actor_opt, grads)
    return BCState(actor, actor_opt, key), {"actor_loss": value}


ALGORITHM = Algorithm(name="bc", config_type=BCConfig, init=init, update=update, evaluate_host=host_evaluator(act),
                      progress_metrics=("actor_loss", "normalized_score"), throughput_unit="updates")
