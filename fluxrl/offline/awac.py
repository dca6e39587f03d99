"""Advantage-weighted actor-critic (Nair et al. 2020) offline, with CORL's defaults.

Each update samples a minibatch; steps the twin critics towards r + gamma (1 - d) min_i Q_targ_i(s', a'),
a' ~ pi(s') clipped to the action bounds; then steps the actor on -mean(w log pi(a | s)) with
w = min(exp(A / lambda), 100), A = min_i Q_i(s, a) - min_i Q_i(s, a_pi), a_pi ~ pi(s), taken with the critics
just updated; and soft-updates the critics' targets. The actor is a Gaussian with an unbounded mean and a
state-independent log standard deviation; evaluation uses its mean.
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
from fluxrl.offline.common import (OfflineData, apply_gradients, critic_input, gaussian_log_prob, host_evaluator,
                                   min_q, network, sample_batch, soft_update)

# CORL's bounds on the actor's log standard deviation.
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


@dataclass(frozen=True)
class AWACConfig:
    """AWAC with CORL's defaults (3x256 ReLU MLPs, Adam 3e-4, lambda 1/3 as in its locomotion configs, batch 256)."""

    # Swept, these become one vmapped axis of a compiled program (`fluxrl.sweep.traced`): each enters the update
    # only as a number in array arithmetic (step size, targets, the advantage weights).
    TRACED_FIELDS: ClassVar[tuple[str, ...]] = ("lr", "discount", "tau", "awac_lambda", "max_weight")

    batch_size: int = 256
    """Transitions per update."""
    hidden: int = 256
    """Units per hidden layer of the actor and the critics."""
    depth: int = 3
    """Hidden layers of the actor and the critics."""
    lr: float = 3e-4
    """Adam learning rate of the actor and the critics (> 0)."""
    discount: float = 0.99
    """Discount gamma, in [0, 1]."""
    tau: float = 0.005
    """Soft target update rate, in (0, 1]."""
    awac_lambda: float = 1.0 / 3.0
    """Temperature lambda of the advantage weights exp(A / lambda) (> 0)."""
    max_weight: float = 100.0
    """Upper clip of the advantage weights (> 0)."""

    def __post_init__(self):
        for name in ("batch_size", "hidden", "depth"):
            check_range(name, getattr(self, name), 1)
        for name in ("lr", "awac_lambda", "max_weight"):
            check_range(name, getattr(self, name), 0.0, low_open=True)
        check_range("discount", self.discount, 0.0, 1.0)
        check_range("tau", self.tau, 0.0, 1.0, low_open=True)


class GaussianActor(NamedTuple):
    """A Gaussian policy: mean net(s), a state-independent log standard deviation."""

    net: MLP
    log_std: jax.Array


class AWACState(NamedTuple):
    """Networks, the critics' targets, Adam states and the key of one seed."""

    actor: GaussianActor
    critics: tuple[MLP, MLP]
    critic_targets: tuple[MLP, MLP]
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    key: jax.Array


def optimizer(config: AWACConfig) -> optax.GradientTransformation:
    """Adam (the actor and the critics each have their own state)."""
    return optax.adam(config.lr)


def act(config: AWACConfig, actor: GaussianActor, observations: jax.Array, max_action: float = 1.0) -> jax.Array:
    """The evaluation action: the policy's mean, clipped to the action bounds."""
    return jnp.clip(actor.net(observations), -max_action, max_action)


def sample_action(actor: GaussianActor, observations: jax.Array, key: jax.Array, max_action: float) -> jax.Array:
    """a ~ N(net(s), exp(log_std)^2), clipped to the action bounds (CORL's actor sample)."""
    mean = actor.net(observations)
    std = jnp.exp(jnp.clip(actor.log_std, LOG_STD_MIN, LOG_STD_MAX))
    return jnp.clip(mean + std * jax.random.normal(key, mean.shape), -max_action, max_action)


def log_prob(actor: GaussianActor, observations: jax.Array, actions: jax.Array) -> jax.Array:
    """log pi(a | s) of the (unclipped) Gaussian."""
    return gaussian_log_prob(actor.net(observations), jnp.clip(actor.log_std, LOG_STD_MIN, LOG_STD_MAX), actions)


def init(config: AWACConfig, data: OfflineData, key: jax.Array) -> AWACState:
    """Fresh networks (targets equal to them), log std 0, Adam states."""
    actor_key, critic1_key, critic2_key, key = jax.random.split(key, 4)
    actor = GaussianActor(network(data.obs_dim, data.action_dim, config.hidden, config.depth, actor_key),
                          jnp.zeros(data.action_dim, jnp.float32))
    critics = tuple(network(data.obs_dim + data.action_dim, 1, config.hidden, config.depth, k)
                    for k in (critic1_key, critic2_key))
    return AWACState(actor, critics, critics, optimizer(config).init(actor), optimizer(config).init(critics), key)


def update(config: AWACConfig, data: OfflineData, state: AWACState) -> tuple[AWACState, dict]:
    """One critic step, one actor step with the updated critics, then soft target updates."""
    key, batch_key, next_key, pi_key = jax.random.split(state.key, 4)
    batch = sample_batch(data, batch_key, config.batch_size)
    next_actions = sample_action(state.actor, batch.next_observations, next_key, data.max_action)
    targets = batch.rewards + config.discount * (1.0 - batch.dones) * min_q(
        state.critic_targets, batch.next_observations, next_actions)

    def critic_loss(critics):
        inputs = critic_input(batch.observations, batch.actions)
        return sum(jnp.mean((q(inputs)[:, 0] - targets) ** 2) for q in critics)

    loss_critic, grads = jax.value_and_grad(critic_loss)(state.critics)
    critics, critic_opt = apply_gradients(optimizer(config), state.critics, state.critic_opt, grads)

    policy_actions = sample_action(state.actor, batch.observations, pi_key, data.max_action)
    advantage = min_q(critics, batch.observations, batch.actions) - min_q(critics, batch.observations,
                                                                            policy_actions)
    weights = jnp.minimum(jnp.exp(advantage / config.awac_lambda), config.max_weight)

    def actor_loss(actor):
        return -jnp.mean(weights * log_prob(actor, batch.observations, batch.actions))

    loss_actor, grads = jax.value_and_grad(actor_loss)(state.actor)
    actor, actor_opt = apply_gradients(optimizer(config), state.actor, state.actor_opt, grads)
    critic_targets = soft_update(state.critic_targets, critics, config.tau)
    new_state = AWACState(actor, critics, critic_targets, actor_opt, critic_opt, key)
    return new_state, {"critic_loss": loss_critic, "actor_loss": loss_actor}


ALGORITHM = Algorithm(name="awac", config_type=AWACConfig, init=init, update=update,
                      evaluate_host=host_evaluator(act), progress_metrics=("critic_loss", "normalized_score"),
                      throughput_unit="updates")
