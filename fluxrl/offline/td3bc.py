"""TD3+BC (Fujimoto & Gu 2021): TD3 whose actor loss adds a behaviour-cloning term, with CORL's defaults.

Each update samples a minibatch from the shared dataset, takes one step of the twin critics towards
y = r + gamma (1 - d) min_i Q_targ_i(s', clip(pi_targ(s') + clip(noise))), and every `policy_delay`-th update
one actor step on -lambda Q_1(s, pi(s)) + mean((pi(s) - a)^2), lambda = alpha / mean|Q_1(s, pi(s))|, followed by
soft updates of the three target networks.
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
from fluxrl.offline.common import (OfflineData, apply_gradients, critic_input, host_evaluator, network, sample_batch,
                                   soft_update)


@dataclass(frozen=True)
class TD3BCConfig:
    """TD3+BC with CORL's defaults (2x256 ReLU MLPs, Adam 3e-4, alpha 2.5, batch 256)."""

    # Swept, these become one vmapped axis of a compiled program (`fluxrl.sweep.traced`): each enters the update
    # only as a number in array arithmetic (Adam's step size, targets, noise, the BC weight).
    TRACED_FIELDS: ClassVar[tuple[str, ...]] = ("actor_lr", "critic_lr", "discount", "tau", "policy_noise", "noise_clip", "alpha")

    batch_size: int = 256
    """Transitions per update."""
    hidden: int = 256
    """Units per hidden layer of the actor and the critics."""
    depth: int = 2
    """Hidden layers of the actor and the critics."""
    actor_lr: float = 3e-4
    """Adam learning rate of the actor (> 0)."""
    critic_lr: float = 3e-4
    """Adam learning rate of the twin critics (> 0)."""
    discount: float = 0.99
    """Discount gamma, in [0, 1]."""
    tau: float = 0.005
    """Soft target update rate, in (0, 1]."""
    policy_noise: float = 0.2
    """Std of the target-policy smoothing noise, in units of the largest action (>= 0)."""
    noise_clip: float = 0.5
    """The smoothing noise is clipped to +-noise_clip, in units of the largest action (>= 0)."""
    policy_delay: int = 2
    """Critic updates per actor (and target) update."""
    alpha: float = 2.5
    """Weight of the Q term against behaviour cloning (> 0)."""

    def __post_init__(self):
        for name in ("batch_size", "hidden", "depth", "policy_delay"):
            check_range(name, getattr(self, name), 1)
        for name in ("actor_lr", "critic_lr", "alpha"):
            check_range(name, getattr(self, name), 0.0, low_open=True)
        check_range("discount", self.discount, 0.0, 1.0)
        check_range("tau", self.tau, 0.0, 1.0, low_open=True)
        check_range("policy_noise", self.policy_noise, 0.0)
        check_range("noise_clip", self.noise_clip, 0.0)


class TD3BCState(NamedTuple):
    """Networks, their targets, Adam states, the key and the update count of one seed."""

    actor: MLP
    actor_target: MLP
    critics: tuple[MLP, MLP]
    critic_targets: tuple[MLP, MLP]
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    key: jax.Array
    step: jax.Array
    actor_loss: jax.Array  # the latest actor loss, reported on the updates that skip the actor


def actor_optimizer(config: TD3BCConfig) -> optax.GradientTransformation:
    """Adam on the actor."""
    return optax.adam(config.actor_lr)


def critic_optimizer(config: TD3BCConfig) -> optax.GradientTransformation:
    """Adam on the twin critics."""
    return optax.adam(config.critic_lr)


def act(config: TD3BCConfig, actor: MLP, observations: jax.Array, max_action: float = 1.0) -> jax.Array:
    """The deterministic policy max_action * tanh(actor(s)) of (normalised) observations."""
    return max_action * jnp.tanh(actor(observations))


def init(config: TD3BCConfig, data: OfflineData, key: jax.Array) -> TD3BCState:
    """Fresh networks (targets equal to them) and Adam states."""
    actor_key, critic1_key, critic2_key, key = jax.random.split(key, 4)
    actor = network(data.obs_dim, data.action_dim, config.hidden, config.depth, actor_key)
    critics = tuple(network(data.obs_dim + data.action_dim, 1, config.hidden, config.depth, k)
                    for k in (critic1_key, critic2_key))
    return TD3BCState(actor, actor, critics, critics, actor_optimizer(config).init(actor),
                      critic_optimizer(config).init(critics), key, jnp.int32(0), jnp.float32(0.0))


def update(config: TD3BCConfig, data: OfflineData, state: TD3BCState) -> tuple[TD3BCState, dict]:
    """One critic step, and an actor step with target updates every `policy_delay` updates."""
    key, batch_key, noise_key = jax.random.split(state.key, 3)
    batch = sample_batch(data, batch_key, config.batch_size)
    max_action = data.max_action
    noise = jnp.clip(config.policy_noise * max_action * jax.random.normal(noise_key, batch.actions.shape),
                     -config.noise_clip * max_action, config.noise_clip * max_action)
    next_actions = jnp.clip(act(config, state.actor_target, batch.next_observations, max_action) + noise,
                            -max_action, max_action)
    next_input = critic_input(batch.next_observations, next_actions)
    target_q = jnp.minimum(*(q(next_input)[:, 0] for q in state.critic_targets))
    targets = batch.rewards + config.discount * (1.0 - batch.dones) * target_q

    def critic_loss(critics):
        inputs = critic_input(batch.observations, batch.actions)
        q1, q2 = (q(inputs)[:, 0] for q in critics)
        return jnp.mean((q1 - targets) ** 2) + jnp.mean((q2 - targets) ** 2), q1

    (loss_critic, q1), grads = jax.value_and_grad(critic_loss, has_aux=True)(state.critics)
    critics, critic_opt = apply_gradients(critic_optimizer(config), state.critics, state.critic_opt, grads)

    def actor_step(_):
        def actor_loss(actor):
            pi = act(config, actor, batch.observations, max_action)
            q = critics[0](critic_input(batch.observations, pi))[:, 0]
            lmbda = jax.lax.stop_gradient(config.alpha / jnp.mean(jnp.abs(q)))
            return -lmbda * jnp.mean(q) + jnp.mean((pi - batch.actions) ** 2)

        loss, grads = jax.value_and_grad(actor_loss)(state.actor)
        actor, actor_opt = apply_gradients(actor_optimizer(config), state.actor, state.actor_opt, grads)
        return (actor, actor_opt, soft_update(state.actor_target, actor, config.tau),
                soft_update(state.critic_targets, critics, config.tau), loss)

    def skip(_):
        return state.actor, state.actor_opt, state.actor_target, state.critic_targets, state.actor_loss

    # CORL counts updates from 1 and steps the actor when the count is a multiple of the delay.
    actor, actor_opt, actor_target, critic_targets, loss_actor = jax.lax.cond(
        (state.step + 1) % config.policy_delay == 0, actor_step, skip, None)
    new_state = TD3BCState(actor, actor_target, critics, critic_targets, actor_opt, critic_opt, key,
                           state.step + 1, loss_actor)
    return new_state, {"critic_loss": loss_critic, "actor_loss": loss_actor, "q_mean": jnp.mean(q1)}


ALGORITHM = Algorithm(name="td3bc", config_type=TD3BCConfig, init=init, update=update,
                      evaluate_host=host_evaluator(act), progress_metrics=("critic_loss", "normalized_score"),
                      throughput_unit="updates")
