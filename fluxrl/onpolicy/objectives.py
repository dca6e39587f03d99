"""The objectives of on-policy learning, pure functions of arrays: GAE with its time-limit rules, the PPO-clip
surrogate, the value loss, advantage standardisation and the optimiser."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def gae(reward, value, next_value, terminated, truncated, gamma: float, gae_lambda: float,
        time_limit: str = "bootstrap"):
    """Generalised advantage estimates and value targets over a time axis [T, ...] (Schulman et al. 2016, eq. 16):
    delta_t = r_t + gamma (1 - terminated_t) V(s'_t) - V(s_t), with s'_t the step's final observation, and
    A_t = delta_t + gamma lambda (1 - terminated_t)(1 - truncated_t) A_{t+1}, A_T = 0; targets A_t + V(s_t).
    `time_limit` terminate treats a truncation as a termination; zero sets the truncated step's delta and advantage
    to 0 (its value loss is masked by `value_mask`)."""
    ended = terminated | truncated if time_limit == "terminate" else terminated
    alive = 1.0 - ended.astype(value.dtype)
    kept = 1.0 - truncated.astype(value.dtype)
    delta = reward + gamma * alive * next_value - value
    if time_limit == "zero":
        delta = delta * kept
    carry_on = gamma * gae_lambda * alive * kept

    def back(advantage, step):
        delta_t, carry_on_t = step
        advantage = delta_t + carry_on_t * advantage
        return advantage, advantage

    _, advantage = jax.lax.scan(back, jnp.zeros_like(value[0]), (delta, carry_on), reverse=True)
    return advantage, advantage + value


def value_mask(truncated, time_limit: str):
    """Weights of the value loss per step: 0 at a truncated step under time_limit zero, else 1."""
    return 1.0 - truncated.astype(jnp.float32) if time_limit == "zero" else jnp.ones(truncated.shape)


def clipped_surrogate(log_ratio, advantage, clip_eps: float):
    """PPO-clip loss -mean(min(r A, clip(r, 1 - eps, 1 + eps) A)), r = exp(log_ratio) (Schulman et al. 2017,
    eq. 7); metrics: the fraction of clipped ratios and the k3 estimate mean(r - 1 - log r) of KL(old || new)."""
    ratio = jnp.exp(log_ratio)
    loss = -jnp.mean(jnp.minimum(ratio * advantage, jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantage))
    metrics = {"clip_fraction": jnp.mean(jnp.abs(ratio - 1.0) > clip_eps),
               "approx_kl": jnp.mean(ratio - 1.0 - log_ratio)}
    return loss, metrics


def value_loss(prediction, old_value, target, clip_eps: float, clip: bool, mask=1.0):
    """0.5 mean mask (V - target)^2; with `clip`, PPO2's pessimistic max over V and old V + clip(V - old V, +-eps)."""
    error = (prediction - target) ** 2
    if clip:
        clipped = old_value + jnp.clip(prediction - old_value, -clip_eps, clip_eps)
        error = jnp.maximum(error, (clipped - target) ** 2)
    return 0.5 * jnp.mean(mask * error)


def clip_each_by_norm(max_norm: float) -> optax.GradientTransformation:
    """Clip the gradient of each element of a tuple of networks to `max_norm` on its own (one optimiser per network,
    as PyTorch's clip_grad_norm_ per parameter group)."""
    clip = optax.clip_by_global_norm(max_norm)

    def update(updates, state, params=None):
        del params
        return tuple(clip.update(part, clip.init(part))[0] for part in updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def make_optimizer(config) -> optax.GradientTransformation:
    """Gradient-norm clipping (global or per network) then Adam, the rate annealed linearly to 0 over
    `anneal_iterations` iterations when that is > 0 (the schedule counts minibatch steps)."""
    lr = config.lr
    if config.anneal_iterations > 0:
        lr = optax.linear_schedule(config.lr, 0.0, config.anneal_iterations * config.epochs * config.minibatches)
    clip = (clip_each_by_norm if config.grad_clip == "per-network" else optax.clip_by_global_norm)
    return optax.chain(clip(config.max_grad_norm), optax.adam(lr, eps=config.adam_eps))


def standardize(advantage: jax.Array) -> jax.Array:
    """(A - mean) / (std + 1e-8); 1e-8 as PureJaxRL, so equal advantages give zeros, not NaN."""
    return (advantage - advantage.mean()) / (advantage.std() + 1e-8)
