"""Running observation statistics of an on-policy run and the normalisation they define (gym's
NormalizeObservation): the policy sees (observation - mean) / sqrt(variance + 1e-8) of every observation seen so far."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

# Keeps (obs - mean) / sqrt(var + eps) finite for a constant observation component (gym's NormalizeObservation).
NORMALIZE_EPS = 1e-8


class RunningStats(NamedTuple):
    """Count, mean and summed squared deviations of every observation seen (Chan et al.'s parallel form)."""

    count: jax.Array  # float32 scalar
    mean: jax.Array  # [observation_size]
    sum_squares: jax.Array  # [observation_size], sum of (x - mean)^2


def init_stats(size: int) -> RunningStats:
    """Statistics of no observations (normalisation is then the identity)."""
    return RunningStats(jnp.float32(0.0), jnp.zeros(size), jnp.zeros(size))


def update_stats(stats: RunningStats, batch: jax.Array) -> RunningStats:
    """The statistics of everything in `stats` and the rows of `batch` [n, size] (Chan, Golub, LeVeque 1979)."""
    n = jnp.float32(batch.shape[0])
    batch_mean = jnp.mean(batch, axis=0)
    total = stats.count + n
    delta = batch_mean - stats.mean
    mean = stats.mean + delta * n / total
    sum_squares = (stats.sum_squares + jnp.sum((batch - batch_mean) ** 2, axis=0)
                   + delta ** 2 * stats.count * n / total)
    return RunningStats(total, mean, sum_squares)


def variance(stats: RunningStats) -> jax.Array:
    """The population variance of the observations seen (1 before any)."""
    return jnp.where(stats.count > 0, stats.sum_squares / jnp.maximum(stats.count, 1.0), 1.0)


def normalize(stats: RunningStats | None, observation: jax.Array) -> jax.Array:
    """(observation - mean) / sqrt(var + 1e-8); unchanged when `stats` is None (normalisation off)."""
    if stats is None:
        return observation
    return (observation - stats.mean) / jnp.sqrt(variance(stats) + NORMALIZE_EPS)
