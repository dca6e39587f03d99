"""What every GFlowNet algorithm shares: the read-only run data, a trainable model (policy network, log Z and
their Adam states), one Adam step of such a model on trajectories, and the per-iteration sampling metrics.

One Adam step takes the loss value and its cotangents from the per-state terms of the model being trained (the
sampler's own for on-policy trajectories, re-computed under the model's parameters for any other) and
back-propagates them through the policy at the visited states only (see `gradients.py`).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from fluxrl.gflownet.gradients import policy_gradient
from fluxrl.gflownet.modes import modes_found
from fluxrl.gflownet.networks import NetworkConfig, init_policy_params, policy_static
from fluxrl.gflownet.policy import StateTerms
from fluxrl.gflownet.sampler import Trajectories


class GFlowNetData(NamedTuple):
    """Read-only arrays shared by every seed of a GFlowNet run: the environment's reward parameters (hypergrid
    reward constants, bit-sequence modes, structure score table) and, for an enumerable environment, the tables
    of the exact evaluation (`metrics.ExactTables`)."""

    env_params: Any
    exact: Any = None


class Model(NamedTuple):
    """A GFlowNet's trainable arrays: policy network, log Z, and (policy, log Z) Adam states."""

    policy: Any
    log_z: jax.Array
    opt_state: Any


class Learner(NamedTuple):
    """How a model trains in this run: what an exploration strategy needs to sample for it and train it.

    Static (Python values) except env_params; built afresh inside each jitted update."""

    env: Any
    env_params: Any
    network: NetworkConfig
    uniform_pb: bool
    batch_size: int
    grad_chunk_rows: int
    lr: float
    log_z_lr: float
    loss: Callable  # (terms, log_reward, length, log_z) -> per-trajectory loss [B] of the main model
    log_z_size: int = 1  # elements of the log Z parameter, summed (Tiapkin et al.'s bit sequences: 64)
    weight_decay: float = 0.0  # L2 coefficient added to every gradient before Adam, as torch's Adam(weight_decay)


def optimizer(lr: float, weight_decay: float) -> optax.GradientTransformation:
    """Adam, with weight decay added to the gradient first when it is > 0 (torch.optim.Adam's, not AdamW)."""
    if weight_decay == 0.0:
        return optax.adam(lr)
    return optax.chain(optax.add_decayed_weights(weight_decay), optax.adam(lr))


def total_log_z(model: Model) -> jax.Array:
    """The model's log Z: the sum of its log Z parameter's elements."""
    return jnp.sum(model.log_z)


def init_model(learner: Learner, key: jax.Array) -> Model:
    """A fresh model: a random policy network, log Z = 0, empty Adam states."""
    policy = init_policy_params(learner.network, learner.env, key)
    log_z = jnp.zeros(() if learner.log_z_size == 1 else (learner.log_z_size,))
    return Model(policy, log_z, (optimizer(learner.lr, learner.weight_decay).init(policy),
                                 optimizer(learner.log_z_lr, learner.weight_decay).init(log_z)))


def train_step(learner: Learner, model: Model, per_trajectory_loss: Callable, trajectories: Trajectories,
               terms: StateTerms) -> tuple[Model, jax.Array]:
    """One Adam step of `model` on the mean of `per_trajectory_loss(terms, log_z)` [B]; the trajectories' kept
    outputs and `terms` must be the model's own. Returns the new model and the mean loss."""
    def mean_loss(terms, log_z):
        return jnp.mean(per_trajectory_loss(terms, jnp.sum(log_z)))

    loss, (terms_cotangent, log_z_grad) = jax.value_and_grad(mean_loss, argnums=(0, 1))(terms, model.log_z)
    policy_grad = policy_gradient(model.policy, policy_static(learner.network, learner.env), learner.env,
                                  trajectories, terms_cotangent, learner.uniform_pb, learner.grad_chunk_rows)
    policy_updates, policy_opt_state = optimizer(learner.lr, learner.weight_decay).update(
        policy_grad, model.opt_state[0], model.policy)
    log_z_updates, log_z_opt_state = optimizer(learner.log_z_lr, learner.weight_decay).update(
        log_z_grad, model.opt_state[1], model.log_z)
    return Model(optax.apply_updates(model.policy, policy_updates), optax.apply_updates(model.log_z, log_z_updates),
                 (policy_opt_state, log_z_opt_state)), loss


def concat(*trees):
    """Pytrees with leaves [B_i, ...] joined along the batch axis."""
    return jax.tree.map(lambda *xs: jnp.concatenate(xs), *trees)


def sampling_metrics(loss: jax.Array, log_z: jax.Array, trajectories: Trajectories,
                     modes_hit: jax.Array) -> dict[str, jax.Array]:
    """The metrics every GFlowNet update reports, by their documented names."""
    return {"loss": loss, "log_z": log_z, "log_reward_mean": jnp.mean(trajectories.log_reward),
            "trajectory_length_mean": jnp.mean(trajectories.length.astype(jnp.float32)),
            "modes_found": modes_found(modes_hit).astype(jnp.float32)}
