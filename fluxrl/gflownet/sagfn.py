"""SA-GFN: an auxiliary GFlowNet rewarded by novelty, measured by random network distillation (RND).

RND (Burda et al. 2019) trains a predictor to match a fixed random network; its error is high on inputs it
has rarely trained on. The auxiliary GFlowNet's reward mixes the true reward with that novelty of the objects
it samples, and the predictor then trains on them. The shared auxiliary mechanics are in `exploration.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import optax

from fluxrl.core.config import check_range
from fluxrl.core.nets import mlp
from fluxrl.gflownet.exploration import Explored, auxiliary_round
from fluxrl.gflownet.model import Learner, Model, init_model
from fluxrl.gflownet.networks import MLPConfig
from fluxrl.gflownet.sampler import Trajectories

# Floor of a novelty before its log is taken: a perfectly predicted input would otherwise give log 0.
NOVELTY_FLOOR = 1e-12


@dataclass(frozen=True)
class SAGFNConfig:
    """Novelty-seeking exploration by an auxiliary GFlowNet with an RND bonus."""

    # Swept, these become one vmapped axis (`fluxrl.sweep.traced`): they enter the update only as array arithmetic.
    TRACED_FIELDS: ClassVar[tuple[str, ...]] = ("beta_e", "beta_i", "beta_sn", "rnd_lr")

    aux_fraction: float = 0.5
    """Fraction of the main model's batch taken from the auxiliary GFlowNet's samples, in (0, 1)."""
    beta_e: float = 1.0
    """Weight of log R in the auxiliary reward."""
    beta_i: float = 1.0
    """Weight of the log RND novelty in the auxiliary reward."""
    beta_sn: float = 1.0
    """Overall scale of the auxiliary log-reward."""
    rnd_lr: float = 1e-3
    """Adam learning rate of the RND predictor (> 0)."""
    rnd_features: int = 64
    """Output size of the RND target and predictor networks."""

    def __post_init__(self):
        check_range("aux_fraction", self.aux_fraction, 0.0, 1.0, low_open=True, high_open=True)
        check_range("rnd_lr", self.rnd_lr, 0.0, low_open=True)
        check_range("rnd_features", self.rnd_features, 1)


def sagfn_log_reward(novelty: jax.Array, log_reward: jax.Array, beta_e: float, beta_i: float,
                     beta_sn: float) -> jax.Array:
    """log R_aux = beta_sn * logaddexp(beta_e * log R, beta_i * log novelty): SA-GFN's augmented reward."""
    novelty = jax.lax.stop_gradient(novelty)
    return beta_sn * jnp.logaddexp(beta_e * log_reward, beta_i * jnp.log(jnp.maximum(novelty, NOVELTY_FLOOR)))


class RND(NamedTuple):
    """Random network distillation: a fixed random target network and a predictor trained to match it."""

    target: object
    predictor: object
    opt_state: object


def rnd_init(obs_size: int, features: int, width: int, key: jax.Array, lr: float) -> RND:
    """A random target and an untrained predictor, both MLPs obs -> `features`."""
    target_key, predictor_key = jax.random.split(key)
    predictor = mlp(obs_size, features, width, 2, predictor_key)
    return RND(mlp(obs_size, features, width, 2, target_key), predictor, optax.adam(lr).init(predictor))


def rnd_novelty(rnd: RND, obs: jax.Array) -> jax.Array:
    """Per-input squared prediction error [N] of the predictor against the target: high where it rarely trained."""
    error = jax.vmap(rnd.predictor)(obs) - jax.vmap(rnd.target)(obs)
    return jnp.sum(error**2, axis=-1)


def rnd_update(rnd: RND, obs: jax.Array, lr: float) -> RND:
    """One Adam step of the predictor on the mean squared error over a batch of inputs."""
    def loss(predictor):
        return jnp.mean(rnd_novelty(rnd._replace(predictor=predictor), obs))

    grads = jax.grad(loss)(rnd.predictor)
    updates, opt_state = optax.adam(lr).update(grads, rnd.opt_state)
    return rnd._replace(predictor=optax.apply_updates(rnd.predictor, updates), opt_state=opt_state)


class SAGFNState(NamedTuple):
    """The auxiliary GFlowNet and its novelty measure."""

    aux: Model
    rnd: RND


def init(config: SAGFNConfig, learner: Learner, key: jax.Array) -> SAGFNState:
    """A fresh auxiliary GFlowNet and RND networks as wide as the policy's MLP."""
    aux_key, rnd_key = jax.random.split(key)
    width = learner.network.hidden if isinstance(learner.network, MLPConfig) else MLPConfig().hidden
    return SAGFNState(init_model(learner, aux_key),
                      rnd_init(learner.env.obs_size, config.rnd_features, width, rnd_key, config.rnd_lr))


def explore(config: SAGFNConfig, learner: Learner, state: SAGFNState, main: Model, fresh: Trajectories,
            key: jax.Array, num_other: int) -> Explored:
    """One auxiliary round rewarded by reward and novelty, then one RND step on the objects it sampled."""
    del fresh
    final_obs = lambda samples: jax.vmap(learner.env.obs)(samples.final_states).astype(jnp.float32)

    def reward(main_loss, samples):
        del main_loss
        novelty = rnd_novelty(state.rnd, final_obs(samples))
        return sagfn_log_reward(novelty, samples.log_reward, config.beta_e, config.beta_i, config.beta_sn)

    explored, samples = auxiliary_round(learner, state.aux, main, key, num_other, reward)
    rnd = rnd_update(state.rnd, final_obs(samples), config.rnd_lr)
    return explored._replace(state=SAGFNState(explored.state, rnd))
