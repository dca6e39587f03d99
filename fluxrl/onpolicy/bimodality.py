"""Are a policy's action samples at a state two modes or one? A measure that a broad unimodal policy fails.

The spread of samples across goals (`saddle_split`) cannot tell two modes from one wide mode: an untrained or a
deliberately wide Gaussian heads to both goals as often as a bimodal policy. Here the samples are judged by their
shape: a two-component Gaussian mixture (full covariances, expectation maximisation) locates the two candidate modes,
and the dip is the share of samples in the band midway between them over the share in the band around the sparser
one (each band a third of the modes' distance wide, across the line through them). Two separated modes leave the
middle nearly empty (dip near 0); one mode of any width, a flat (uniform) spread included, fills it at least as much
as its flanks (dip about 1 or more). Samples are bimodal when the dip is below `MAX_DIP` and the smaller mode holds at
least `MIN_WEIGHT` of them; for an equal mixture of two Gaussians the dip falls below 0.5 once their means are about
3.3 standard deviations apart. Both thresholds are set by the shape alone, not by any method's result.

The samples are the policy's own (before a tanh or the environment's clip): squashing or clipping a wide distribution
piles its mass on the bounds, which would make any wide policy look two-peaked.
"""

from __future__ import annotations

import math
import jax
import jax.numpy as jnp

MAX_DIP = 0.5  # two modes: the band between them holds under half the samples of the sparser mode's band
MIN_WEIGHT = 0.2  # the smaller mode must hold this share of the samples (as saddle_bimodal's 20%)
EM_ITERATIONS = 100
# Added to the covariances' diagonals, relative to the samples' total variance, so a policy whose samples coincide
# (a deterministic one) has finite likelihoods; the same for both fits, so the gain stays 0 there.
RIDGE = 1e-6


def _gaussian_log_density(x: jax.Array, mean: jax.Array, cov: jax.Array) -> jax.Array:
    """log N(x; mean, cov) for samples x [n, d]."""
    chol = jnp.linalg.cholesky(cov)
    z = jax.scipy.linalg.solve_triangular(chol, (x - mean).T, lower=True)
    return (-0.5 * jnp.sum(z ** 2, axis=0) - jnp.sum(jnp.log(jnp.diagonal(chol)))
            - 0.5 * x.shape[-1] * math.log(2.0 * math.pi))


def _ridge(x: jax.Array) -> jax.Array:
    d = x.shape[-1]
    return (RIDGE * jnp.maximum(jnp.trace(jnp.cov(x.T, bias=True).reshape(d, d)), 1e-12)) * jnp.eye(d)


def two_gaussian_fit(x: jax.Array, iterations: int = EM_ITERATIONS):
    """(weights [2], means [2, d], covariances [2, d, d]) of a two-component Gaussian
    mixture fitted to samples x [n, d] by EM, started from the split of the samples at the median of their
    projection on the principal axis (deterministic)."""
    n, d = x.shape
    ridge = _ridge(x)
    centred = x - jnp.mean(x, axis=0)
    _, vectors = jnp.linalg.eigh(jnp.cov(x.T, bias=True).reshape(d, d))
    projection = centred @ vectors[:, -1]
    upper = (projection > jnp.median(projection)).astype(x.dtype)
    responsibility = jnp.stack([1.0 - upper, upper], axis=1)  # [n, 2]

    def m_step(responsibility):
        mass = jnp.sum(responsibility, axis=0) + 1e-9
        means = (responsibility.T @ x) / mass[:, None]
        deviations = x[None] - means[:, None]  # [2, n, d]
        covs = jnp.einsum("kn,kni,knj->kij", responsibility.T, deviations, deviations) / mass[:, None, None] + ridge
        return mass / n, means, covs

    def joint(params):
        weights, means, covs = params
        densities = jax.vmap(_gaussian_log_density, (None, 0, 0))(x, means, covs)  # [2, n]
        return densities + jnp.log(jnp.maximum(weights, 1e-12))[:, None]

    def em(responsibility, _):
        log_joint = joint(m_step(responsibility))
        return jax.nn.softmax(log_joint, axis=0).T, None

    responsibility, _ = jax.lax.scan(em, responsibility, None, length=iterations)
    return m_step(responsibility)


def dip(x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(dip, smaller mode's weight, the two modes' means [2, d]) of samples x [n, d]. The dip is the number of
    samples in the band midway between the two fitted modes over the number in the band around the sparser mode
    (bands a third of the modes' distance wide, across the line through them): about 0 for two separated modes,
    >= 1 for one mode of any width."""
    weights, means, _ = two_gaussian_fit(x)
    axis = means[1] - means[0]
    length = jnp.sum(axis ** 2)
    position = (x - means[0]) @ axis / jnp.maximum(length, 1e-12)  # mode 0 at 0, mode 1 at 1
    count = lambda centre: jnp.sum(jnp.abs(position - centre) < 1.0 / 6.0).astype(jnp.float32)
    # Whole counts, so a ratio of exactly 1/2 is exactly 0.5 (means of shares round either way), and one sample
    # added to both bands, so an empty mode band (all samples in one place) gives 1, not 0 / 0.
    ratio = (count(0.5) + 1.0) / (jnp.minimum(count(0.0), count(1.0)) + 1.0)
    return ratio, jnp.min(weights), means


def is_bimodal(x: jax.Array) -> jax.Array:
    """True when samples x [n, d] are two modes: dip below MAX_DIP and the smaller mode holding >= MIN_WEIGHT."""
    ratio, weight, _ = dip(x)
    return (ratio < MAX_DIP) & (weight >= MIN_WEIGHT)
