"""The meta-gradient core on a small quadratic inner problem (where finite differences and a closed form are exact
references), mixing, the variance estimators on known covariances, and TD(lambda)'s gradient in gamma."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxrl.core.config import ConfigError
from fluxrl.meta import a2c, metagrad, variance

# theta in R^3, eta in R^2: L_in(theta; eta, noise) = 1/2 (theta - c)^T A (theta - c), c = B tanh(eta) + noise,
# L_out(theta; noise) = 1/2 |theta - t - noise|^2; the noise is each step's "rollout", drawn from its key.
A = jnp.array([[2.0, 0.3, 0.0], [0.3, 1.0, 0.1], [0.0, 0.1, 0.5]])
B = jnp.array([[1.0, -0.5], [0.2, 0.8], [-0.7, 0.4]])
TARGET = jnp.array([0.5, -1.0, 2.0])
THETA0 = jnp.array([0.1, 0.2, -0.3])
ETA0 = jnp.array([0.3, -0.4])
LR = 0.1


def centre(eta, noise):
    return B @ jnp.tanh(eta) + noise


def inner_loss(theta, eta, noise):
    error = theta - centre(eta, noise)
    return 0.5 * error @ A @ error


def quadratic_outer(carry):
    theta, _, noise = carry
    return 0.5 * jnp.sum((theta - TARGET - noise) ** 2)


def quadratic_step(optimizer):
    """The generic inner step on the quadratic problem: carry = (theta, optimiser state, pending noise)."""
    def step(eta, carry, key):
        theta, opt_state, noise = carry
        loss_before = quadratic_outer(carry)
        updates, opt_state = optimizer.update(jax.grad(inner_loss)(theta, eta, noise), opt_state, theta)
        theta = optax.apply_updates(theta, updates)
        return (theta, opt_state, 0.3 * jax.random.normal(key, (3,), theta.dtype)), (loss_before, {})
    return step


def start(optimizer, dtype=jnp.float32):
    theta = THETA0.astype(dtype)
    return theta, optimizer.init(theta), jnp.zeros(3, dtype)


@jax.jit
def rmsprop_objective(eta, keys, weights):
    """The weighted outer losses of an RMSProp unroll, for finite differences (jitted: called many times)."""
    optimizer = optax.rmsprop(LR, decay=0.9, eps=1e-3)
    losses, _, _ = metagrad.unrolled_losses(quadratic_step(optimizer), quadratic_outer, eta,
                                            start(optimizer, eta.dtype), keys)
    return jnp.dot(weights.astype(eta.dtype), losses)


@pytest.mark.parametrize("steps, mode", [(4, "reverse"), (4, "forward"),
                                         pytest.param(1, "reverse", marks=pytest.mark.slow),
                                         pytest.param(4, "remat", marks=pytest.mark.slow)])
def test_k_step_meta_gradient_equals_finite_differences_through_rmsprop(steps, mode):
    with jax.enable_x64(True):
        optimizer = optax.rmsprop(LR, decay=0.9, eps=1e-3)  # a stateful optimiser: its state is differentiated
        eta = ETA0.astype(jnp.float64)
        keys = jax.random.split(jax.random.PRNGKey(steps), steps)
        weights = metagrad.mixing_weights("none", steps)
        directions = jnp.eye(2, dtype=jnp.float64) if mode == "forward" else None
        grad, _, _, _ = metagrad.meta_gradient(quadratic_step(optimizer), quadratic_outer, eta,
                                               start(optimizer, jnp.float64), keys, weights, mode == "remat",
                                               directions)
        eps = 1e-6
        numeric = np.array([(rmsprop_objective(eta + eps * e, keys, weights)
                             - rmsprop_objective(eta - eps * e, keys, weights)) / (2 * eps)
                            for e in jnp.eye(2, dtype=jnp.float64)])
        np.testing.assert_allclose(np.asarray(grad), numeric, rtol=1e-6, atol=1e-9)
        assert np.abs(numeric).max() > 1e-3  # the check is not vacuous


def test_one_step_meta_gradient_equals_its_closed_form():
    # theta_1 = theta_0 - a A (theta_0 - c(eta)), so d theta_1 / d eta = a A J_c and
    # g_1 = (a A J_c)^T (theta_1 - t - noise_1) with J_c = B diag(1 - tanh(eta)^2).
    optimizer = optax.sgd(LR)
    keys = jax.random.split(jax.random.PRNGKey(0), 1)
    grad, losses, _, (theta1, _, noise1) = metagrad.meta_gradient(
        quadratic_step(optimizer), quadratic_outer, ETA0, start(optimizer), keys, metagrad.mixing_weights("none", 1))
    expected_theta1 = THETA0 - LR * A @ (THETA0 - centre(ETA0, jnp.zeros(3)))
    jacobian = B * (1 - jnp.tanh(ETA0) ** 2)
    closed_form = (LR * A @ jacobian).T @ (expected_theta1 - TARGET - noise1)
    np.testing.assert_allclose(theta1, expected_theta1, rtol=1e-6)
    np.testing.assert_allclose(grad, closed_form, rtol=1e-5)
    np.testing.assert_allclose(losses[0], quadratic_outer((theta1, None, noise1)), rtol=1e-6)


def test_mixing_with_all_weight_on_the_last_step_is_the_k_step_gradient_and_uniform_is_the_mean_of_k_steps():
    optimizer = optax.rmsprop(LR, decay=0.9, eps=1e-3)
    steps = 4
    keys = jax.random.split(jax.random.PRNGKey(3), steps)
    step = quadratic_step(optimizer)
    last = jnp.array([0.0, 0.0, 0.0, 1.0])
    rows = jnp.stack([last, metagrad.mixing_weights("uniform", steps), metagrad.mixing_weights("geometric", steps)])
    together = metagrad.meta_gradients(step, quadratic_outer, ETA0, start(optimizer), keys, rows)

    @jax.jit
    def k_step_gradients(eta, keys):
        """The k-step meta-gradients, k = 1..K, each from its own shorter unroll on the same first k batches."""
        last_loss = lambda eta, k: metagrad.unrolled_losses(step, quadratic_outer, eta, start(optimizer),  # noqa
                                                            keys[:k])[0][-1]
        return [jax.grad(last_loss)(eta, k) for k in range(1, steps + 1)]

    k_step = k_step_gradients(ETA0, keys)
    np.testing.assert_allclose(together[0], k_step[-1], rtol=1e-5)
    np.testing.assert_allclose(together[1], np.mean(k_step, axis=0), rtol=1e-4, atol=1e-7)
    geometric = np.array([1, 0.5, 0.25, 0.125]) / 1.875
    np.testing.assert_allclose(together[2], geometric @ np.array(k_step), rtol=1e-4, atol=1e-7)
    single, *_ = metagrad.meta_gradient(step, quadratic_outer, ETA0, start(optimizer), keys, last)
    np.testing.assert_allclose(single, together[0], rtol=1e-5)
    # Forward mode along the first logit alone: that logit's column of every estimator, zeros for the other.
    forward = metagrad.meta_gradients(step, quadratic_outer, ETA0, start(optimizer), keys, rows,
                                      directions=jnp.eye(ETA0.size)[:1])
    np.testing.assert_allclose(forward[:, 0], together[:, 0], rtol=1e-4, atol=1e-7)
    assert np.all(np.asarray(forward[:, 1:]) == 0)


@given(st.integers(1, 9), st.sampled_from(metagrad.MIXES), st.floats(0.05, 1.0))
@settings(max_examples=10, deadline=None)
def test_mixing_weights_are_a_distribution_and_none_puts_everything_on_the_last_step(steps, mix, kappa):
    weights = np.asarray(metagrad.mixing_weights(mix, steps, kappa))
    assert weights.shape == (steps,) and np.all(weights >= 0) and np.isclose(weights.sum(), 1.0, atol=1e-6)
    if mix == "none":
        assert weights[-1] == 1.0
    if mix == "geometric" and steps > 1 and kappa < 1:
        np.testing.assert_allclose(weights[1:] / weights[:-1], kappa, rtol=1e-4)


def test_trace_of_covariance_recovers_a_known_covariance():
    rng = np.random.default_rng(0)
    root = rng.normal(size=(4, 4))
    covariance = root @ root.T
    samples = rng.multivariate_normal(np.arange(4.0), covariance, size=40_000).astype(np.float32)
    assert abs(float(variance.trace_covariance(jnp.asarray(samples))) / np.trace(covariance) - 1) < 0.03
    pair = jnp.array([[1.0, 2.0], [3.0, -2.0]])  # two samples: unbiased trace = |x1 - x2|^2 / 2 exactly
    np.testing.assert_allclose(variance.trace_covariance(pair), (4 + 16) / 2)


def test_cosine_to_the_reference_is_one_without_noise_and_falls_with_it():
    direction = jnp.array([3.0, -1.0, 2.0]) * 1e-7  # meta-gradients are this small; the cosine must not care
    exact = jnp.tile(direction, (8, 1))
    assert np.isclose(float(variance.cosine_to_reference(exact, direction * 3)), 1.0, atol=1e-5)
    noise = jax.random.normal(jax.random.PRNGKey(0), (8, 3)) * 1e-6
    assert float(variance.cosine_to_reference(exact + noise, direction)) < 0.9
    grads = jnp.stack([exact, exact * 2, -exact], axis=1)  # [M, 3 estimators, D]
    metrics = variance.summarise(grads, grads[:4], own=1)
    assert np.isclose(float(metrics["meta_grad_bias_uniform"]), 1.0, atol=1e-5)
    assert np.isclose(float(metrics["meta_grad_bias_geometric"]), -1.0, atol=1e-5)
    assert float(metrics["meta_grad_variance"]) == float(metrics["meta_grad_variance_uniform"])


def test_relative_variance_is_scale_free_and_the_trace_over_the_squared_mean_of_both_batches():
    rng = np.random.default_rng(1)
    mean = np.array([1.0, -2.0, 0.5])
    # Three estimators of one direction: the second half the size with the same relative spread, the third with
    # four times the relative spread; scaled to meta-gradient sizes.
    base = mean + rng.normal(size=(72, 3))
    grads = jnp.asarray(np.stack([base, base / 2, mean + 4 * (base - mean)], axis=1) * 1e-6, jnp.float32)
    metrics = variance.summarise(grads[:8], grads[8:], own=0)
    pooled = np.asarray(grads, np.float64)
    for index, name in enumerate(variance.ESTIMATORS):
        trace = np.trace(np.cov(pooled[:, index].T))
        norm = np.sum(pooled[:, index].mean(axis=0) ** 2)
        assert float(metrics[f"meta_grad_variance_{name}"]) == pytest.approx(trace, rel=1e-4)
        assert float(metrics[f"meta_grad_mean_sq_norm_{name}"]) == pytest.approx(norm, rel=1e-4)
        assert float(metrics[f"meta_grad_relative_variance_{name}"]) == pytest.approx(trace / norm, rel=1e-4)
    raw = float(metrics["meta_grad_variance_kstep"] / metrics["meta_grad_variance_uniform"])
    relative = float(metrics["meta_grad_relative_variance_kstep"] / metrics["meta_grad_relative_variance_uniform"])
    assert raw == pytest.approx(4.0, rel=1e-4) and relative == pytest.approx(1.0, rel=1e-4)  # size alone
    assert float(metrics["meta_grad_relative_variance_geometric"]
                 / metrics["meta_grad_relative_variance_kstep"]) > 4.0
    # Each sample against the reference batch's mean, not its own batch's.
    reference = np.asarray(grads[8:, 0], np.float64).mean(axis=0)
    samples = np.asarray(grads[:8, 0], np.float64)
    expected = np.mean(samples @ reference / np.linalg.norm(samples, axis=1) / np.linalg.norm(reference))
    assert float(metrics["meta_grad_cosine_kstep"]) == pytest.approx(expected, rel=1e-4)


def test_td_lambda_returns_match_a_hand_computed_case():
    reward = jnp.array([1.0, 2.0, 3.0])
    next_value = jnp.array([10.0, 20.0, 30.0])
    discount = jnp.array([0.5, 0.0, 0.5])  # the episode ends at step 1
    # G_2 = 3 + 0.5 * 30 = 18; G_1 = 2 (ended); G_0 = 1 + 0.5 ((1 - 0.5) 10 + 0.5 * 2) = 4
    np.testing.assert_allclose(a2c.lambda_returns(reward, discount, next_value, 0.5), [4.0, 2.0, 18.0])


def _returns_total(gamma, lambda_, reward, alive, next_value):
    return jnp.sum(a2c.lambda_returns(reward, gamma * alive, next_value, lambda_) * jnp.arange(1, 3))


returns_total = jax.jit(_returns_total)
returns_total_grad = jax.jit(jax.grad(_returns_total, argnums=(0, 1)))


@given(st.floats(0.1, 0.99), st.floats(0.0, 1.0), st.integers(0, 1000))
@settings(max_examples=15, deadline=None)
def test_td_lambda_returns_gradient_in_gamma_and_lambda_equals_finite_differences(gamma, lambda_, seed):
    with jax.enable_x64(True):
        rng = np.random.default_rng(seed)
        reward, next_value = jnp.asarray(rng.normal(size=(6, 2))), jnp.asarray(rng.normal(size=(6, 2)))
        alive = jnp.asarray(rng.random((6, 2)) > 0.2, jnp.float64)
        total = lambda g, lam: returns_total(g, lam, reward, alive, next_value)  # noqa: E731
        analytic = returns_total_grad(gamma, lambda_, reward, alive, next_value)
        eps = 1e-6
        numeric = ((total(gamma + eps, lambda_) - total(gamma - eps, lambda_)) / (2 * eps),
                   (total(gamma, lambda_ + eps) - total(gamma, lambda_ - eps)) / (2 * eps))
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_configs_reject_mistakes_with_one_sentence():
    with pytest.raises(ConfigError, match="inner_steps must divide"):
        metagrad.MetaConfig(inner_steps=3)
    with pytest.raises(ConfigError, match="meta_params"):
        metagrad.MetaConfig(meta_params=("discount",))
    with pytest.raises(ConfigError, match="env must be one of"):
        a2c.A2CConfig(env="snake-7x7")
    with pytest.raises(ConfigError, match="gamma"):
        a2c.A2CConfig(gamma=1.0)
