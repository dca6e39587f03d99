"""The meta-gradient's variance and bias, measured at a fixed (theta, eta) as the reference asks: the trace of the
covariance of M independent meta-gradients, and their cosine to a large-sample reference; the bias proxy is the
cosine of a mixed estimator's mean to the mean of the longest-horizon one (the K-step meta-gradient, which the
paper calls better in expectation).

Each of the M samples starts from the run's current environments, network, RMSProp state and logits, collects its
own first rollout with its own key and unrolls K inner updates with fresh rollouts; from that one unroll come the
three estimators at once (K-step, uniform mix, geometric mix), so their variances are compared on the same
batches. The vectors are the gradients with respect to the learned meta-parameters' logits only (with one learned
meta-parameter, a cosine is the sign agreement: +1 or -1).
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


def cosine(a: jax.Array, b: jax.Array) -> jax.Array:
    """Cosine similarity of two vectors (0 when either is zero)."""
    # Each vector is scaled to unit length first: meta-gradients can be ~1e-6, whose product of norms would
    # underflow an epsilon guard.
    unit = lambda v: v / jnp.where(jnp.linalg.norm(v) > 0, jnp.linalg.norm(v), 1.0)  # noqa: E731
    return jnp.dot(unit(a), unit(b))


def cosine_to_reference(samples: jax.Array) -> jax.Array:
    """Mean over i of cos(g_i, mean of the other M - 1 samples): each sample against a large-sample reference
    that does not contain it (so the measure is not inflated by the sample's own share of the mean)."""
    total = samples.sum(axis=0)
    others = (total[None] - samples) / (samples.shape[0] - 1)
    return jnp.mean(jax.vmap(cosine)(samples, others))


def summarise(grads: jax.Array, own: int) -> dict[str, jax.Array]:
    """Diagnostics of meta-gradients [M, 3, D] of the ESTIMATORS; `own` indexes the estimator the run uses."""
    metrics = {}
    for index, name in enumerate(ESTIMATORS):
        metrics[f"meta_grad_variance_{name}"] = trace_covariance(grads[:, index])
        metrics[f"meta_grad_cosine_{name}"] = cosine_to_reference(grads[:, index])
    means = grads.mean(axis=0)
    for index, name in enumerate(ESTIMATORS[1:], start=1):
        metrics[f"meta_grad_bias_{name}"] = cosine(means[index], means[0])
    metrics["meta_grad_variance"] = metrics[f"meta_grad_variance_{ESTIMATORS[own]}"]
    return metrics


def sample_gradients(config: metagrad.MetaConfig, state: a2c.A2CState, key: jax.Array) -> jax.Array:
    """M independent meta-gradients [M, 3, learned] of the three estimators at the state's (theta, eta)."""
    steps = config.inner_steps
    rows = jnp.stack([metagrad.mixing_weights(mix, steps, config.kappa) for mix in ("none", "uniform", "geometric")])
    learned = jnp.array([a2c.META_PARAMS.index(name) for name in config.meta_params])

    def one(sample_key):
        rollout_key, unroll_key = jax.random.split(sample_key)
        batch, env, _ = a2c.collect(config.a2c, state.step.net, state.step.env, rollout_key)
        carry = state.step._replace(batch=batch, env=env)
        grads = metagrad.meta_gradients(metagrad.a2c_step(config), metagrad.final_outer_loss, state.logits, carry,
                                        jax.random.split(unroll_key, steps), rows, config.remat,
                                        metagrad.forward_directions(config))
        return grads[:, learned]

    # One sample at a time: memory of one unroll, not M.
    return jax.lax.map(one, jax.random.split(key, config.variance_samples))


def diagnose(config: metagrad.MetaConfig, state: a2c.A2CState, key: jax.Array) -> dict[str, jax.Array]:
    """Variance, cosine and bias metrics of the meta-gradient at the state's (theta, eta) (module docstring)."""
    own = {"none": 0, "uniform": 1, "geometric": 2}[config.mix]
    return summarise(sample_gradients(config, state, key), own)
