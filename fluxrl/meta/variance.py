"""The meta-gradient's variance and bias, measured at a fixed (theta, eta) as the reference asks: the trace of the
covariance of independent meta-gradients, the squared norm of their mean (so that the scale-free relative variance
trace(Cov) / |mean|^2 can be formed), and the cosine of each sample to a large-sample reference drawn apart; the
bias proxy is the cosine of a mixed estimator's reference to the K-step one's (the longest horizon, which the
paper calls better in expectation).

Each sample starts from the run's current environments, network, RMSProp state and logits, collects its own first
rollout with its own key and unrolls K inner updates with fresh rollouts; from that one unroll come the three
estimators at once (K-step, uniform mix, geometric mix), so their statistics are paired on the same batches. Two
batches are drawn: M = `variance_samples` samples, whose cosines to the reference are averaged, and R =
`reference_samples` (at least 64 in the reproduction) whose mean is the reference. The variance and the mean's
norm use both batches together (N = M + R samples). The vectors are the gradients with respect to the learned
meta-parameters' logits only.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fluxrl.meta import a2c, metagrad

ESTIMATORS = ("kstep", "uniform", "geometric")


def trace_covariance(samples: jax.Array) -> jax.Array:
    """Unbiased trace of the covariance of samples [M, D] (M >= 2): sum over d of var_d with ddof 1."""
    centred = samples - samples.mean(axis=0)
    return jnp.sum(centred ** 2) / (samples.shape[0] - 1)


def mean_squared_norm(samples: jax.Array) -> jax.Array:
    """|mean|^2 of samples [M, D]: the squared norm of their sample mean."""
    return jnp.sum(samples.mean(axis=0) ** 2)


def relative_variance(samples: jax.Array) -> jax.Array:
    """trace(Cov) / |mean|^2 of samples [M, D]: the variance in units of the estimator's own squared size."""
    # Rescaled to a largest entry of 1 first: the ratio does not depend on scale, and meta-gradients span many
    # orders of magnitude over a run, whose squares could leave float32's normal range.
    scale = jnp.maximum(jnp.max(jnp.abs(samples)), jnp.finfo(samples.dtype).tiny)
    scaled = samples / scale
    return trace_covariance(scaled) / jnp.maximum(mean_squared_norm(scaled), jnp.finfo(samples.dtype).tiny)


def cosine(a: jax.Array, b: jax.Array) -> jax.Array:
    """Cosine similarity of two vectors (0 when either is zero)."""
    # Each vector is scaled to unit length first: meta-gradients can be ~1e-6, whose product of norms would
    # underflow an epsilon guard.
    unit = lambda v: v / jnp.where(jnp.linalg.norm(v) > 0, jnp.linalg.norm(v), 1.0)  # noqa: E731
    return jnp.dot(unit(a), unit(b))


def cosine_to_reference(samples: jax.Array, reference: jax.Array) -> jax.Array:
    """Mean over i of cos(g_i, reference) for samples [M, D] and a reference [D] estimated apart from them (so
    the measure is not inflated by a sample's own share of it)."""
    return jnp.mean(jax.vmap(cosine, in_axes=(0, None))(samples, reference))


def summarise(grads: jax.Array, reference_grads: jax.Array, own: int) -> dict[str, jax.Array]:
    """Diagnostics of meta-gradients [M, 3, D] of the ESTIMATORS against a reference batch [R, 3, D] drawn
    apart; `own` indexes the estimator the run uses."""
    pooled = jnp.concatenate([grads, reference_grads])
    references = reference_grads.mean(axis=0)
    metrics = {}
    for index, name in enumerate(ESTIMATORS):
        metrics[f"meta_grad_variance_{name}"] = trace_covariance(pooled[:, index])
        metrics[f"meta_grad_mean_sq_norm_{name}"] = mean_squared_norm(pooled[:, index])
        metrics[f"meta_grad_relative_variance_{name}"] = relative_variance(pooled[:, index])
        metrics[f"meta_grad_cosine_{name}"] = cosine_to_reference(grads[:, index], references[index])
    for index, name in enumerate(ESTIMATORS[1:], start=1):
        metrics[f"meta_grad_bias_{name}"] = cosine(references[index], references[0])
    metrics["meta_grad_variance"] = metrics[f"meta_grad_variance_{ESTIMATORS[own]}"]
    return metrics


def sample_gradients(config: metagrad.MetaConfig, state: a2c.A2CState, key: jax.Array,
                     count: int) -> jax.Array:
    """`count` independent meta-gradients [count, 3, learned] of the three estimators at the state's
    (theta, eta)."""
    steps = config.inner_steps
    rows = jnp.stack([metagrad.mixing_weights(mix, steps, config.kappa) for mix in ("none", "uniform", "geometric")])
    learned = jnp.array([a2c.META_PARAMS.index(name) for name in config.meta_params])
    # Forward mode pushes one tangent per learned logit and serves all three estimators; reverse mode pulls back
    # one cotangent per estimator. Forward is taken unless the config asks for reverse mode or rematerialisation.
    forward = config.autodiff != "reverse" and not config.remat and len(config.meta_params) <= len(ESTIMATORS)
    directions = jnp.eye(len(a2c.META_PARAMS))[learned] if forward else None

    def one(sample_key):
        rollout_key, unroll_key = jax.random.split(sample_key)
        batch, env, _ = a2c.collect(config.a2c, state.step.net, state.step.env, rollout_key)
        carry = state.step._replace(batch=batch, env=env)
        grads = metagrad.meta_gradients(metagrad.a2c_step(config), metagrad.final_outer_loss, state.logits, carry,
                                        jax.random.split(unroll_key, steps), rows, config.remat, directions)
        return grads[:, learned]

    # One sample at a time: memory of one unroll, not of all of them.
    return jax.lax.map(one, jax.random.split(key, count))


def diagnose(config: metagrad.MetaConfig, state: a2c.A2CState, key: jax.Array) -> dict[str, jax.Array]:
    """Variance, relative variance, cosine and bias metrics of the meta-gradient at the state's (theta, eta)
    (module docstring)."""
    own = {"none": 0, "uniform": 1, "geometric": 2}[config.mix]
    sample_key, reference_key = jax.random.split(key)
    return summarise(sample_gradients(config, state, sample_key, config.variance_samples),
                     sample_gradients(config, state, reference_key, config.reference_samples), own)
