"""Trajectory balance, detailed balance and sub-trajectory balance as pure functions of per-state terms.

Shapes: B trajectories, T + 1 rows each (see `sampler.py`): `log_pf[b, t]` is log P_F of the transition out of
s_t, `log_pb[b, t]` is log P_B of the transition into s_t, `log_flow[b, t]` is log F(s_t), and `length[b]` is
the number of transitions, so row `length` holds the terminated state x whose reward replaces its flow.
Every loss returns one value per trajectory, shape [B]; the training loss is their mean.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _row_index(log_pf: jax.Array) -> jax.Array:
    return jnp.arange(log_pf.shape[1])[None, :]


def trajectory_balance(log_pf, log_pb, log_reward, length, log_z) -> jax.Array:
    """Trajectory balance, Malkin et al. 2022 eq. (14): (log Z + sum log P_F - log R(x) - sum log P_B)^2."""
    rows = _row_index(log_pf)
    sum_pf = jnp.sum(jnp.where(rows < length[:, None], log_pf, 0.0), axis=1)
    sum_pb = jnp.sum(jnp.where((rows >= 1) & (rows <= length[:, None]), log_pb, 0.0), axis=1)
    return (log_z + sum_pf - log_reward - sum_pb) ** 2


def _flow_with_reward(log_flow, log_reward, length) -> jax.Array:
    """log F(s_t), with log R(x) in the terminal row (t == length)."""
    return jnp.where(_row_index(log_flow) == length[:, None], log_reward[:, None], log_flow)


def detailed_balance(log_pf, log_pb, log_flow, log_reward, length) -> jax.Array:
    """Detailed balance, Bengio et al. 2023 eq. (9), averaged over each trajectory's transitions:
    (log F(s) + log P_F(s'|s) - log F(s') - log P_B(s|s'))^2, with F(x) = R(x) at the end."""
    flow = _flow_with_reward(log_flow, log_reward, length)
    residual = flow[:, :-1] + log_pf[:, :-1] - flow[:, 1:] - log_pb[:, 1:]
    valid = _row_index(residual) < length[:, None]
    return jnp.sum(jnp.where(valid, residual**2, 0.0), axis=1) / jnp.maximum(length, 1)


def subtrajectory_balance(log_pf, log_pb, log_flow, log_reward, length, lam: float) -> jax.Array:
    """Sub-trajectory balance SubTB(lambda), Madan et al. 2023 eq. (8): the squared balance residual of every
    sub-trajectory s_i -> s_j (i < j <= length), weighted by lambda^(j - i) and normalised per trajectory."""
    flow = _flow_with_reward(log_flow, log_reward, length)
    rows = _row_index(log_pf)
    # transition t (s_t -> s_{t+1}) has log P_F in row t and log P_B in row t + 1
    step = jnp.where(rows < length[:, None], log_pf - jnp.roll(log_pb, -1, axis=1), 0.0)
    # cumulative[b, t] = sum over transitions before s_t of (log P_F - log P_B)
    cumulative = jnp.concatenate([jnp.zeros_like(step[:, :1]), jnp.cumsum(step[:, :-1], axis=1)], axis=1)
    residual = (flow[:, :, None] + cumulative[:, None, :] - cumulative[:, :, None] - flow[:, None, :])
    i = rows[0][:, None]
    j = rows[0][None, :]
    valid = (i < j)[None] & (j[None] <= length[:, None, None])
    weight = jnp.where(valid, jnp.asarray(lam, jnp.float32) ** (j - i).astype(jnp.float32), 0.0)
    return jnp.sum(weight * residual**2, axis=(1, 2)) / jnp.maximum(jnp.sum(weight, axis=(1, 2)), 1e-30)


BALANCE_LOSSES = ("tb", "db", "subtb")


def balance_loss(name: str, terms, log_reward, length, log_z, subtb_lambda: float = 0.9) -> jax.Array:
    """Per-trajectory values [B] of the balance loss `name` (tb, db or subtb) from per-state terms (log_pf,
    log_pb, log_flow); log Z is used by TB only, lambda by SubTB only."""
    if name == "tb":
        return trajectory_balance(terms.log_pf, terms.log_pb, log_reward, length, log_z)
    if name == "db":
        return detailed_balance(terms.log_pf, terms.log_pb, terms.log_flow, log_reward, length)
    return subtrajectory_balance(terms.log_pf, terms.log_pb, terms.log_flow, log_reward, length, subtb_lambda)
