"""Multi-step meta-gradients with mixing (Bonnet, Caron, Barrett, Davies, Laterre; arXiv 2111.00206), on A2C.

With eta the meta-parameter logits and theta_k the network after k inner updates (Xu et al. 2018's form),

    theta_{k+1} = RMSProp(theta_k, grad_theta L_in(theta_k; tau_k, eta)),        k = 0 .. K-1
    g_K   = d/d eta  L_out(theta_K(eta); tau_K)                                  (the K-step meta-gradient)
    g_mix = d/d eta  sum_k w_k L_out(theta_k(eta); tau_k),  sum_k w_k = 1        (mixing, k = 1 .. K)

differentiating through all K updates and RMSProp's state, the rollouts tau_k themselves not (each collected by
theta_k, as on-policy data must be). tau_K, collected by theta_K, is the outer rollout of this meta-update and the
first inner rollout of the next one, so a meta-update costs K rollouts, as K plain updates do. K = 1 is the usual
one-step meta-gradient; weights (0, ..., 0, 1) give g_K. Mixing weights: uniform 1/K, or geometric
w_k proportional to (1 - kappa) kappa^(k-1) (the paper's exact weights could not be read; both are offered).
The meta-optimiser is Adam 3e-3 after clipping the meta-gradient's global norm to 0.1 (the group's public code).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from fluxrl.core.config import ConfigError, check_choice, check_range
from fluxrl.core.runner import Algorithm
from fluxrl.meta import a2c

MIXES = ("none", "uniform", "geometric")
AUTODIFF = ("auto", "forward", "reverse")


@dataclass(frozen=True)
class MetaConfig:
    """Self-tuning A2C: which meta-parameters are learned, over how many inner steps, and how they are mixed."""

    a2c: a2c.A2CConfig = field(default_factory=lambda: a2c.A2CConfig(updates_per_iteration=8))
    """The inner A2C (its gamma, lambda and loss weights are the meta-parameters' starting values)."""
    meta_params: tuple[str, ...] = ("gamma",)
    """Meta-parameters learned, among gamma, lambda, policy, value, entropy; the others stay fixed."""
    inner_steps: int = 1
    """K: inner A2C updates differentiated through per meta-update (must divide a2c.updates_per_iteration)."""
    mix: str = "none"
    """none: the K-step meta-gradient; uniform or geometric: the weighted sum over the K inner steps' outer losses."""
    kappa: float = 0.5
    """Geometric mixing's ratio: w_k proportional to (1 - kappa) kappa^(k-1), in (0, 1]."""
    meta_lr: float = 3e-3
    """Adam learning rate of the meta-parameter logits (> 0)."""
    meta_clip: float = 0.1
    """Global-norm clip of the meta-gradient before Adam (> 0)."""
    autodiff: str = "auto"
    """How the meta-gradient is differentiated, both exactly: forward (one tangent pass per learned
    meta-parameter, memory independent of K), reverse (one backward pass whatever their number, activations of
    all K updates stored), or auto: forward when one meta-parameter is learned (measured cheaper at every K:
    BENCHMARKS.md) and remat is off, else reverse."""
    remat: bool = False
    """Reverse mode: recompute each inner update's activations in the backward pass instead of storing them
    (memory ~ 1 update instead of K, at about one more forward pass per update); pays for large K or batches."""
    variance_samples: int = 8
    """M: independent meta-gradients per variance measurement (the runner's evaluations), at least 2; their
    cosines to the reference are averaged."""
    reference_samples: int = 64
    """R: independent meta-gradients drawn apart whose mean is the large-sample reference, at least 2 (64 or more
    for a reference worth the name)."""

    def __post_init__(self):
        check_range("inner_steps", self.inner_steps, 1)
        check_choice("mix", self.mix, MIXES)
        check_choice("autodiff", self.autodiff, AUTODIFF)
        if self.remat and self.autodiff == "forward":
            raise ConfigError("remat recomputes a backward pass's activations: it needs autodiff reverse or auto.")
        check_range("kappa", self.kappa, 0.0, 1.0, low_open=True)
        check_range("meta_lr", self.meta_lr, 0.0, low_open=True)
        check_range("meta_clip", self.meta_clip, 0.0, low_open=True)
        check_range("variance_samples", self.variance_samples, 2)
        check_range("reference_samples", self.reference_samples, 2)
        if not self.meta_params:
            raise ConfigError("meta_params must name at least one of " + ", ".join(a2c.META_PARAMS) + ".")
        for name in self.meta_params:
            check_choice("meta_params", name, a2c.META_PARAMS)
        if self.a2c.updates_per_iteration % self.inner_steps:
            raise ConfigError(f"inner_steps must divide a2c.updates_per_iteration = "
                              f"{self.a2c.updates_per_iteration}, got {self.inner_steps}.")


def mixing_weights(mix: str, steps: int, kappa: float = 0.5) -> jax.Array:
    """Weights [K] of the outer losses after inner steps 1..K, summing to 1: none (0, ..., 0, 1), uniform 1/K,
    or geometric (1 - kappa) kappa^(k-1) normalised."""
    if mix == "none":
        return jnp.zeros(steps).at[-1].set(1.0)
    if mix == "uniform":
        return jnp.full(steps, 1.0 / steps)
    weights = (1.0 - kappa) * kappa ** jnp.arange(steps, dtype=jnp.float32) if kappa < 1 else jnp.ones(steps)
    return weights / weights.sum()


# step(eta, carry, key) -> (carry after one inner update, (outer loss of the carry before it, metrics))
InnerStep = Callable[[jax.Array, Any, jax.Array], tuple[Any, tuple[jax.Array, Any]]]


def unrolled_losses(step: InnerStep, final_loss: Callable[[Any], jax.Array], eta: jax.Array, carry: Any,
                    keys: jax.Array, remat: bool = False):
    """K = len(keys) inner updates: (outer losses [K] after updates 1..K, per-update metrics, final carry)."""
    body = lambda c, key: step(eta, c, key)  # noqa: E731
    if remat:
        body = jax.checkpoint(body)
    # The first update runs outside the loop: its network does not depend on eta, which forward mode then knows
    # (a symbolic zero tangent, not a zero carried through the loop) and so skips that update's network tangents.
    carry, (_, first_metrics) = body(carry, keys[0])
    carry, (losses, metrics) = jax.lax.scan(body, carry, keys[1:])
    metrics = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first_metrics, metrics)
    return jnp.concatenate([losses, final_loss(carry)[None]]), metrics, carry


def meta_gradient(step: InnerStep, final_loss: Callable[[Any], jax.Array], eta: jax.Array, carry: Any,
                  keys: jax.Array, weights: jax.Array, remat: bool = False, directions: jax.Array | None = None):
    """d/d eta of sum_k weights_k L_out(theta_k(eta)): (gradient like eta, outer losses [K], metrics, final carry
    with no gradient attached). Reverse mode, or with `directions` [D, P] forward mode along them (the gradient
    projected on their span: rows of the identity give the gradient of those logits, zeros elsewhere)."""
    if directions is not None:
        tangents, losses, metrics, carry_out = _forward_tangents(step, final_loss, eta, carry, keys, directions)
        return (tangents @ weights) @ directions, losses, metrics, jax.lax.stop_gradient(carry_out)

    def objective(eta):
        losses, metrics, carry_out = unrolled_losses(step, final_loss, eta, carry, keys, remat)
        return jnp.dot(weights, losses), (losses, metrics, carry_out)

    grad, (losses, metrics, carry_out) = jax.grad(objective, has_aux=True)(eta)
    return grad, losses, metrics, jax.lax.stop_gradient(carry_out)


def meta_gradients(step: InnerStep, final_loss: Callable[[Any], jax.Array], eta: jax.Array, carry: Any,
                   keys: jax.Array, weight_rows: jax.Array, remat: bool = False,
                   directions: jax.Array | None = None) -> jax.Array:
    """Several meta-gradients [E, *eta.shape] of one unroll at once, one per row of weights [E, K] (reverse
    mode, or forward mode along `directions` as in `meta_gradient`)."""
    if directions is not None:
        tangents, _, _, _ = _forward_tangents(step, final_loss, eta, carry, keys, directions)
        return weight_rows @ tangents.T @ directions

    def objectives(eta):
        losses, _, _ = unrolled_losses(step, final_loss, eta, carry, keys, remat)
        return weight_rows @ losses

    return jax.jacrev(objectives)(eta)


def _forward_tangents(step, final_loss, eta, carry, keys, directions):
    """(d losses / d eta along each direction [D, K], losses [K], metrics, final carry) by forward mode."""
    def objective(eta):
        losses, metrics, carry_out = unrolled_losses(step, final_loss, eta, carry, keys)
        return losses, (metrics, carry_out)

    def along(direction):
        losses, tangent, aux = jax.jvp(objective, (eta,), (direction,), has_aux=True)
        return tangent, (losses, aux)

    # The primal unroll does not depend on the direction: vmap computes it once (out_axes None).
    tangents, (losses, (metrics, carry_out)) = jax.vmap(along, out_axes=(0, None))(directions)
    return tangents, losses, metrics, carry_out


def make_meta_optimizer(config: MetaConfig) -> optax.GradientTransformation:
    """Global-norm clipping then Adam, on the meta-parameter logits."""
    return optax.chain(optax.clip_by_global_norm(config.meta_clip), optax.adam(config.meta_lr))


def learned_mask(config: MetaConfig) -> jax.Array:
    """1 for each learned meta-parameter logit, 0 for the fixed ones ([5], a2c.META_PARAMS order)."""
    return jnp.array([float(name in config.meta_params) for name in a2c.META_PARAMS])


def forward_directions(config: MetaConfig) -> jax.Array | None:
    """The learned logits' unit vectors [D, 5] when the config differentiates in forward mode, else None."""
    forward = config.autodiff == "forward" or (config.autodiff == "auto" and len(config.meta_params) == 1
                                               and not config.remat)
    if not forward:
        return None
    return jnp.eye(len(a2c.META_PARAMS))[jnp.array([a2c.META_PARAMS.index(name) for name in config.meta_params])]


def a2c_step(config: MetaConfig) -> InnerStep:
    """One A2C inner update as a function of the meta-parameter logits."""
    return lambda eta, carry, key: a2c.inner_step(config.a2c, eta, carry, key)


def final_outer_loss(carry: a2c.StepCarry) -> jax.Array:
    """L_out of the carry's network on its pending rollout (collected by that network)."""
    return a2c.outer_loss(carry.net, carry.batch)


def init(config: MetaConfig, data: Any, key: jax.Array) -> a2c.A2CState:
    """A2C's state with the meta-optimiser's."""
    state = a2c.init_state(config.a2c, key)
    return state._replace(meta_opt_state=make_meta_optimizer(config).init(state.logits))


def update(config: MetaConfig, data: Any, state: a2c.A2CState) -> tuple[a2c.A2CState, dict]:
    """updates_per_iteration / K meta-updates, each K inner updates then one Adam step on the logits."""
    meta_updates = config.a2c.updates_per_iteration // config.inner_steps
    weights = mixing_weights(config.mix, config.inner_steps, config.kappa)
    mask, optimizer = learned_mask(config), make_meta_optimizer(config)

    def one(carry, key):
        step, logits, meta_opt_state = carry
        keys = jax.random.split(key, config.inner_steps)
        grad, _, metrics, step = meta_gradient(a2c_step(config), final_outer_loss, logits, step, keys, weights,
                                               config.remat, forward_directions(config))
        grad = grad * mask
        updates, meta_opt_state = optimizer.update(grad, meta_opt_state, logits)
        metrics = {**metrics, "meta_grad_norm": jnp.broadcast_to(jnp.linalg.norm(grad), (config.inner_steps,))}
        return (step, optax.apply_updates(logits, updates), meta_opt_state), metrics

    key, meta_key = jax.random.split(state.key)
    (step, logits, meta_opt_state), metrics = jax.lax.scan(
        one, (state.step, state.logits, state.meta_opt_state), jax.random.split(meta_key, meta_updates))
    state, metrics = a2c.finish_iteration(config.a2c, state, step, metrics, key, logits, meta_opt_state)
    return state, {**metrics, "meta_updates": state.iteration * meta_updates}


def evaluate(config: MetaConfig, data: Any, state: a2c.A2CState, key: jax.Array) -> dict:
    """The meta-gradient's variance and bias diagnostics at the state's (theta, eta) (`variance.diagnose`)."""
    from fluxrl.meta import variance

    return variance.diagnose(config, state, key)


def env_steps_per_iteration(config: MetaConfig) -> int:
    """Environment steps of one seed's iteration (the outer rollouts are the next inner ones)."""
    return a2c.env_steps_per_iteration(config.a2c)


ALGORITHM = Algorithm(name="metagrad", config_type=MetaConfig, init=init, update=update, evaluate=evaluate,
                      progress_metrics=("episode_return", "gamma"), counters=("env_steps", "meta_updates"),
                      throughput_unit="env_steps", work_per_iteration=env_steps_per_iteration)
