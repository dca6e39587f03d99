"""Implicit Q-learning (Kostrikov, Nair & Levine 2022) with CORL's defaults.

Each update samples a minibatch and, in CORL's order: fits V(s) to the expectile of min_i Q_targ_i(s, a)
(eq. 5); steps the twin critics towards r + gamma (1 - d) V(s') with V(s') taken before V's step (eq. 6), then
soft-updates their target; and extracts the policy by advantage-weighted regression, weights
exp(beta (Q_targ(s, a) - V(s))) clipped at 100 (eq. 7), on a Gaussian (or deterministic) tanh-mean actor whose
learning rate may decay by a cosine schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from fluxrl.core.config import check_range
from fluxrl.core.nets import MLP
from fluxrl.core.runner import Algorithm
from fluxrl.offline.common import (OfflineData, apply_gradients, critic_input, expectile_loss, gaussian_log_prob,
                                   host_evaluator, network, sample_batch, soft_update)

# CORL's bounds on the actor's log standard deviation.
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


@dataclass(frozen=True)
class IQLConfig:
    """IQL with CORL's defaults (2x256 ReLU MLPs, Adam 3e-4, beta 3, expectile 0.7, batch 256)."""

    # Swept, these become one vmapped axis of a compiled program (`fluxrl.sweep.traced`): each enters the update
    # only as a number in array arithmetic (step sizes, targets, weights, the expectile).
    TRACED_FIELDS: ClassVar[tuple[str, ...]] = ("actor_lr", "critic_lr", "value_lr", "discount", "tau", "beta", "expectile", "max_weight")

    batch_size: int = 256
    """Transitions per update."""
    hidden: int = 256
    """Units per hidden layer of the actor, the critics and the value network."""
    depth: int = 2
    """Hidden layers of every network."""
    actor_lr: float = 3e-4
    """Adam learning rate of the actor (> 0)."""
    critic_lr: float = 3e-4
    """Adam learning rate of the twin critics (> 0)."""
    value_lr: float = 3e-4
    """Adam learning rate of the value network (> 0)."""
    discount: float = 0.99
    """Discount gamma, in [0, 1]."""
    tau: float = 0.005
    """Soft target update rate of the critics, in (0, 1]."""
    beta: float = 3.0
    """Inverse temperature of the advantage weights exp(beta A) (>= 0; 0 is behaviour cloning)."""
    expectile: float = 0.7
    """Expectile of the value fit, in (0, 1); 0.5 is a mean (SARSA-like), towards 1 a maximum."""
    max_weight: float = 100.0
    """Upper clip of the advantage weights (> 0)."""
    deterministic_actor: bool = False
    """Regress a deterministic tanh actor by weighted squared error instead of a Gaussian by weighted likelihood."""
    actor_lr_decay_steps: Optional[int] = None
    """Cosine-decay the actor's learning rate to 0 over this many updates (CORL: the whole run); None: constant.
    `fluxrl train offline` sets it to --iterations when not given."""

    def __post_init__(self):
        for name in ("batch_size", "hidden", "depth"):
            check_range(name, getattr(self, name), 1)
        for name in ("actor_lr", "critic_lr", "value_lr", "max_weight"):
            check_range(name, getattr(self, name), 0.0, low_open=True)
        check_range("discount", self.discount, 0.0, 1.0)
        check_range("tau", self.tau, 0.0, 1.0, low_open=True)
        check_range("beta", self.beta, 0.0)
        check_range("expectile", self.expectile, 0.0, 1.0, low_open=True, high_open=True)
        if self.actor_lr_decay_steps is not None:
            check_range("actor_lr_decay_steps", self.actor_lr_decay_steps, 1)


class GaussianActor(NamedTuple):
    """A Gaussian policy: mean max_action * tanh(net(s)), a state-independent log standard deviation."""

    net: MLP
    log_std: jax.Array


class IQLState(NamedTuple):
    """Networks, the critics' target, Adam states and the key of one seed."""

    actor: GaussianActor
    critics: tuple[MLP, MLP]
    critic_target: tuple[MLP, MLP]
    value: MLP
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    value_opt: optax.OptState
    key: jax.Array


def actor_optimizer(config: IQLConfig) -> optax.GradientTransformation:
    """Adam on the actor, its learning rate cosine-decayed when `actor_lr_decay_steps` is set."""
    if config.actor_lr_decay_steps is None:
        return optax.adam(config.actor_lr)
    return optax.adam(optax.cosine_decay_schedule(config.actor_lr, config.actor_lr_decay_steps))


def act(config: IQLConfig, actor: GaussianActor, observations: jax.Array, max_action: float = 1.0) -> jax.Array:
    """The evaluation action: the policy's mean max_action * tanh(net(s))."""
    return max_action * jnp.tanh(actor.net(observations))


def init(config: IQLConfig, data: OfflineData, key: jax.Array) -> IQLState:
    """Fresh networks (the critics' target equal to them), log std 0, Adam states."""
    actor_key, critic1_key, critic2_key, value_key, key = jax.random.split(key, 5)
    actor = GaussianActor(network(data.obs_dim, data.action_dim, config.hidden, config.depth, actor_key),
                          jnp.zeros(data.action_dim, jnp.float32))
    critics = tuple(network(data.obs_dim + data.action_dim, 1, config.hidden, config.depth, k)
                    for k in (critic1_key, critic2_key))
    value = network(data.obs_dim, 1, config.hidden, config.depth, value_key)
    return IQLState(actor, critics, critics, value, actor_optimizer(config).init(actor),
                    optax.adam(config.critic_lr).init(critics), optax.adam(config.value_lr).init(value), key)


def update(config: IQLConfig, data: OfflineData, state: IQLState) -> tuple[IQLState, dict]:
    """One step of the value network, the critics (then their target) and the actor on one minibatch."""
    key, batch_key = jax.random.split(state.key)
    batch = sample_batch(data, batch_key, config.batch_size)
    inputs = critic_input(batch.observations, batch.actions)
    target_q = jnp.minimum(*(q(inputs)[:, 0] for q in state.critic_target))
    next_v = state.value(batch.next_observations)[:, 0]

    def value_loss(value):
        advantage = target_q - value(batch.observations)[:, 0]
        return expectile_loss(advantage, config.expectile), advantage

    (loss_value, advantage), grads = jax.value_and_grad(value_loss, has_aux=True)(state.value)
    value, value_opt = apply_gradients(optax.adam(config.value_lr), state.value, state.value_opt, grads)

    targets = batch.rewards + config.discount * (1.0 - batch.dones) * next_v

    def critic_loss(critics):
        return sum(jnp.mean((q(inputs)[:, 0] - targets) ** 2) for q in critics) / len(critics)

    loss_critic, grads = jax.value_and_grad(critic_loss)(state.critics)
    critics, critic_opt = apply_gradients(optax.adam(config.critic_lr), state.critics, state.critic_opt, grads)
    critic_target = soft_update(state.critic_target, critics, config.tau)

    weights = jnp.minimum(jnp.exp(config.beta * advantage), config.max_weight)

    def actor_loss(actor):
        if config.deterministic_actor:
            mean = act(config, actor, batch.observations, data.max_action)
            behaviour_loss = jnp.sum((mean - batch.actions) ** 2, axis=-1)
        else:
            mean = jnp.tanh(actor.net(batch.observations)) * data.max_action
            log_std = jnp.clip(actor.log_std, LOG_STD_MIN, LOG_STD_MAX)
            behaviour_loss = -gaussian_log_prob(mean, log_std, batch.actions)
        return jnp.mean(weights * behaviour_loss)

    loss_actor, grads = jax.value_and_grad(actor_loss)(state.actor)
    actor, actor_opt = apply_gradients(actor_optimizer(config), state.actor, state.actor_opt, grads)
    new_state = IQLState(actor, critics, critic_target, value, actor_opt, critic_opt, value_opt, key)
    return new_state, {"value_loss": loss_value, "critic_loss": loss_critic, "actor_loss": loss_actor}


ALGORITHM = Algorithm(name="iql", config_type=IQLConfig, init=init, update=update, evaluate_host=host_evaluator(act),
                      progress_metrics=("critic_loss", "normalized_score"), throughput_unit="updates")
