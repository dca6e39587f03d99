"""Soft Actor-Critic (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications", arXiv 1812.05905):
the behaviour policies of the D4RL-style MuJoCo datasets.

The standard settings of that paper (its Table 1): two hidden layers of 256 ReLU units for the actor and each of
the twin critics, Adam with learning rate 3e-4, batch 256, discount 0.99, target smoothing 5e-3, a replay buffer of
1M transitions, one gradient step per environment step, a tanh-squashed Gaussian actor and an automatically tuned
entropy temperature with target entropy -dim(A).

The gradient step is one jitted pure function `update(config, state, batch) -> (state, metrics)`, and
`update_many` scans it over stacked batches; the simulator is not JAX, so environment interaction is a host loop
around them (`sac_loop.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from fluxrl.core.config import check_range
from fluxrl.core.nets import MLP, mlp

# Bounds on the actor's log standard deviation, as in the authors' code (softlearning): wide enough never to bind
# in practice, narrow enough that exp() cannot overflow or collapse to zero.
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


@dataclass(frozen=True)
class SACConfig:
    """Soft Actor-Critic's settings; the defaults are Haarnoja et al. 2018's (arXiv 1812.05905, Table 1)."""

    hidden_width: int = 256
    """Units per hidden layer of the actor and of each critic."""
    hidden_depth: int = 2
    """Hidden layers of the actor and of each critic."""
    lr: float = 3e-4
    """Adam learning rate of the actor, the critics and the temperature (> 0)."""
    gamma: float = 0.99
    """Discount, in [0, 1]."""
    tau: float = 5e-3
    """Target critics move this fraction towards the critics after every update, in (0, 1]."""
    batch_size: int = 256
    """Transitions per gradient step."""
    buffer_size: int = 1_000_000
    """Replay buffer capacity in transitions (the oldest are overwritten)."""
    random_steps: int = 10_000
    """Environment steps taken with uniform random actions before the first update (softlearning's MuJoCo
    setting)."""
    updates_per_call: int = 50
    """Gradient steps run in one jitted call, after as many environment steps (a speed knob; one update per step
    on average either way)."""
    initial_temperature: float = 1.0
    """Entropy temperature alpha at the start (> 0)."""
    target_entropy_per_dim: float = -1.0
    """Target entropy per action dimension (the paper: -1, so -dim(A) in all)."""

    def __post_init__(self):
        check_range("hidden_width", self.hidden_width, 1)
        check_range("hidden_depth", self.hidden_depth, 1)
        check_range("lr", self.lr, 0.0, low_open=True)
        check_range("gamma", self.gamma, 0.0, 1.0)
        check_range("tau", self.tau, 0.0, 1.0, low_open=True)
        check_range("batch_size", self.batch_size, 1)
        check_range("buffer_size", self.buffer_size, self.batch_size)
        check_range("random_steps", self.random_steps, self.batch_size)
        check_range("updates_per_call", self.updates_per_call, 1)
        check_range("initial_temperature", self.initial_temperature, 0.0, low_open=True)


class Batch(NamedTuple):
    """Transitions for one gradient step (leading axis: batch); actions in the actor's [-1, 1] scale."""

    observations: jax.Array
    actions: jax.Array
    rewards: jax.Array
    terminals: jax.Array  # 1.0: a true terminal state, no bootstrap (a time-limit cut is not terminal)
    next_observations: jax.Array


class SACState(NamedTuple):
    """Everything SAC's updates need: networks, optimiser states, temperature and the key."""

    actor: MLP  # obs -> (mean, log_std) of the pre-tanh Gaussian
    critics: tuple[MLP, MLP]  # (obs, action) -> Q; a pair, not a stacked vmap, which XLA's CPU runs ~2x slower
    target_critics: tuple[MLP, MLP]
    log_temperature: jax.Array
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    temperature_opt: optax.OptState
    key: jax.Array
    updates: jax.Array


def init(config: SACConfig, observation_dim: int, action_dim: int, key: jax.Array) -> SACState:
    """A fresh SAC state for the given observation and action sizes."""
    actor_key, critic_key, key = jax.random.split(key, 3)
    actor = mlp(observation_dim, 2 * action_dim, config.hidden_width, config.hidden_depth, actor_key)
    critics = tuple(mlp(observation_dim + action_dim, 1, config.hidden_width, config.hidden_depth, k)
                    for k in jax.random.split(critic_key, 2))
    log_temperature = jnp.asarray(math.log(config.initial_temperature), jnp.float32)
    optimiser = optax.adam(config.lr)
    target_critics = jax.tree.map(jnp.copy, critics)  # own buffers: the update donates its state
    return SACState(actor, critics, target_critics, log_temperature, optimiser.init(actor), optimiser.init(critics),
                    optimiser.init(log_temperature), key, jnp.zeros((), jnp.int32))


def gaussian_parameters(actor: MLP, observation: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(mean, log_std) of the actor's pre-tanh Gaussian for one observation."""
    mean, log_std = jnp.split(actor(observation), 2)
    return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)


def sample_action(actor: MLP, observation: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(action in [-1, 1], its log-density) for one observation, by reparameterisation through tanh.

    log pi(a|s) = log N(u; mu, sigma) - sum_i log(1 - tanh(u_i)^2)  (Haarnoja et al. 2018, appendix C), with
    log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)) written so it stays finite where tanh saturates."""
    mean, log_std = gaussian_parameters(actor, observation)
    noise = jax.random.normal(key, mean.shape)
    pre_tanh = mean + jnp.exp(log_std) * noise
    log_density = jnp.sum(-0.5 * noise ** 2 - log_std - 0.5 * math.log(2 * math.pi))
    log_jacobian = jnp.sum(2.0 * (math.log(2.0) - pre_tanh - jax.nn.softplus(-2.0 * pre_tanh)))
    return jnp.tanh(pre_tanh), log_density - log_jacobian


def q_values(critics: tuple[MLP, MLP], observations: jax.Array, actions: jax.Array) -> jax.Array:
    """[2, batch] values of both critics."""
    inputs = jnp.concatenate([observations, actions], axis=-1)
    return jnp.stack([jax.vmap(critic)(inputs)[:, 0] for critic in critics])


def critic_loss(critics: tuple[MLP, MLP], target: jax.Array, batch: Batch) -> jax.Array:
    """Soft Bellman residual J_Q = E[0.5 (Q_i(s, a) - y)^2] summed over the twin critics (eq. 5)."""
    return jnp.sum(jnp.mean(0.5 * (q_values(critics, batch.observations, batch.actions) - target) ** 2, axis=1))


def actor_loss(actor: MLP, critics: tuple[MLP, MLP], temperature: jax.Array, observations: jax.Array,
               key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(J_pi = E[alpha log pi(a|s) - min_i Q_i(s, a)], the batch's log-densities), a ~ pi reparameterised (eq. 7)."""
    keys = jax.random.split(key, observations.shape[0])
    actions, log_probs = jax.vmap(sample_action, (None, 0, 0))(actor, observations, keys)
    q_min = jnp.min(q_values(critics, observations, actions), axis=0)
    return jnp.mean(temperature * log_probs - q_min), log_probs


def temperature_loss(log_temperature: jax.Array, log_probs: jax.Array, target_entropy: float) -> jax.Array:
    """J(alpha) = E[-log alpha (log pi(a|s) + target entropy)] (eq. 18, on log alpha as in the authors' code)."""
    return -jnp.mean(log_temperature * jax.lax.stop_gradient(log_probs + target_entropy))


def update(config: SACConfig, state: SACState, batch: Batch) -> tuple[SACState, dict[str, jax.Array]]:
    """One SAC gradient step: critics, then actor and temperature, then the target critics (Algorithm 1)."""
    optimiser = optax.adam(config.lr)
    key, next_key, actor_key = jax.random.split(state.key, 3)
    temperature = jnp.exp(state.log_temperature)

    next_keys = jax.random.split(next_key, batch.observations.shape[0])
    next_actions, next_log_probs = jax.vmap(sample_action, (None, 0, 0))(state.actor, batch.next_observations,
                                                                        next_keys)
    next_q = jnp.min(q_values(state.target_critics, batch.next_observations, next_actions), axis=0)
    target = batch.rewards + config.gamma * (1.0 - batch.terminals) * (next_q - temperature * next_log_probs)
    loss_q, critic_grads = jax.value_and_grad(critic_loss)(state.critics, jax.lax.stop_gradient(target), batch)
    critic_updates, critic_opt = optimiser.update(critic_grads, state.critic_opt)
    critics = optax.apply_updates(state.critics, critic_updates)

    (loss_pi, log_probs), actor_grads = jax.value_and_grad(actor_loss, has_aux=True)(
        state.actor, critics, temperature, batch.observations, actor_key)
    actor_updates, actor_opt = optimiser.update(actor_grads, state.actor_opt)
    actor = optax.apply_updates(state.actor, actor_updates)

    target_entropy = config.target_entropy_per_dim * batch.actions.shape[-1]
    loss_alpha, temperature_grad = jax.value_and_grad(temperature_loss)(state.log_temperature, log_probs,
                                                                        target_entropy)
    temperature_update, temperature_opt = optimiser.update(temperature_grad, state.temperature_opt)
    log_temperature = optax.apply_updates(state.log_temperature, temperature_update)

    target_critics = optax.incremental_update(critics, state.target_critics, config.tau)
    metrics = {"critic_loss": loss_q, "actor_loss": loss_pi, "temperature_loss": loss_alpha,
               "temperature": temperature, "entropy": -jnp.mean(log_probs), "target_q_mean": jnp.mean(target)}
    new_state = SACState(actor, critics, target_critics, log_temperature, actor_opt, critic_opt, temperature_opt,
                         key, state.updates + 1)
    return new_state, metrics


@partial(jax.jit, static_argnums=0, donate_argnums=1)
def update_many(config: SACConfig, state: SACState, batches: Batch) -> tuple[SACState, dict[str, jax.Array]]:
    """`update` over a stack of batches (leading axis: updates) in one compiled scan; metrics averaged."""
    state, metrics = jax.lax.scan(partial(update, config), state, batches)
    return state, jax.tree.map(jnp.mean, metrics)
