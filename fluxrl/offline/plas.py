"""PLAS, Policy in the Latent Action Space (Zhou, Bajracharya & Held, CoRL 2020), the VAE-latent baseline of CNF.

A conditional VAE is pre-trained on the dataset's actions (`fluxrl.offline.vae`) and frozen; a deterministic latent
policy z = max_latent_action * tanh(net(s)) acts through its decoder, a = decode(z, s), so it only proposes actions
the VAE puts mass near (a latent within +-2 of the prior's mode). Each update samples a minibatch; steps the twin
critics towards BCQ's clipped double-Q target
    y = r + gamma (1 - d) [lambda min_i Q_targ_i(s', a') + (1 - lambda) max_i Q_targ_i(s', a')],
    a' = decode(pi_targ(s'), s'), lambda = 0.75 (algos.py:220-229);
then steps the latent policy on -mean Q_1(s, decode(pi(s), s)), the gradient flowing through the frozen decoder
(algos.py:236-241), and soft-updates the critics' and the policy's targets (algos.py:244-248). The optional
perturbation layer (`LatentPerturbation`, algos.py:33-62) adds phi * tanh(net([s, a])) to the decoded action.

The frozen VAE is no part of a seed's state: it rides in the runner's shared read-only `data` (`fluxrl.offline.latent.LatentData`), next to
the dataset, so it is never copied per seed nor checkpointed; one VAE serves every seed (the official code trains one
per seed). Both the VAE and the RL see the observations as `OfflineData` holds them: raw in `fluxrl reproduce cnf`,
as the official code (main.py:93), normalised by default when trained from the command line. Official code:
github:Wenxuan-Zhou/PLAS (`algos.py`, `main.py`); CNF's repository (github:tinkoff-ai/cnf) holds no PLAS code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fluxrl.core.config import check_range, refuse_unused
from fluxrl.core.nets import MLP
from fluxrl.core.runner import Algorithm
from fluxrl.offline.common import (OfflineData, apply_gradients, critic_input, evaluate_policy, sample_batch,
                                   soft_update)
from fluxrl.offline.latent import LatentData, make_latent_data
from fluxrl.offline.vae import ConditionalVAE, VAEConfig, cached_vae


@dataclass(frozen=True)
class PLASConfig:
    """PLAS with the official defaults (main.py:52-62 and algos.py:187-189; main.py's values win where they differ)."""

    batch_size: int = 100
    """Transitions per update (main.py:59)."""
    hidden: tuple[int, ...] = (400, 300)
    """Hidden layer widths of the latent policy and of each critic (algos.py:19, 69)."""
    actor_lr: float = 1e-4
    """Adam learning rate of the latent policy (main.py:60; algos.py's default 1e-3 is overridden) (> 0)."""
    critic_lr: float = 1e-3
    """Adam learning rate of the twin critics (main.py:61) (> 0)."""
    discount: float = 0.99
    """Discount gamma (algos.py:188), in [0, 1]."""
    tau: float = 0.005
    """Soft target update rate of the critics and the policy (main.py:62), in (0, 1]."""
    lmbda: float = 0.75
    """Weight of the smaller twin target in BCQ's clipped double-Q target (algos.py:189, 225), in [0, 1]."""
    max_latent_action: float = 2.0
    """The latent policy's output lies in +-max_latent_action, about 2 standard deviations of the VAE's prior
    (main.py:57) (> 0)."""
    perturbation: bool = False
    """Add the perturbation layer (`LatentPerturbation`); off as in main.py:48 (algo_name "Latent"), whose phi
    default is 0 (main.py:58)."""
    phi: float = 0.05
    """The perturbation lies in +-phi (README: --phi 0.05; algos.py:60, not scaled by max_action) (>= 0)."""
    perturbation_hidden: tuple[int, ...] = (400, 300)
    """Hidden layer widths of the perturbation network (algos.py:37)."""
    vae: VAEConfig = field(default_factory=VAEConfig)
    """The VAE pre-trained before RL (see `prepare_data`); its latent size is 2 x action_dim (main.py:106)."""

    def __post_init__(self):
        check_range("batch_size", self.batch_size, 1)
        for name in ("hidden", "perturbation_hidden"):
            check_range(f"len({name})", len(getattr(self, name)), 1)
            for width in getattr(self, name):
                check_range(name, width, 1)
        for name in ("actor_lr", "critic_lr", "max_latent_action"):
            check_range(name, getattr(self, name), 0.0, low_open=True)
        check_range("discount", self.discount, 0.0, 1.0)
        check_range("tau", self.tau, 0.0, 1.0, low_open=True)
        check_range("lmbda", self.lmbda, 0.0, 1.0)
        check_range("phi", self.phi, 0.0)
        if not self.perturbation:
            refuse_unused(self, ("phi", "perturbation_hidden"), "without the perturbation layer (perturbation=False)")


def make_data(offline: OfflineData, vae: ConditionalVAE) -> LatentData:
    """The shared `data` of a PLAS run from a dataset and a VAE pre-trained on it."""
    return make_latent_data(offline, vae)


def prepare_data(config: PLASConfig, offline: OfflineData, dataset_id: str,
                 cache_dir: str | os.PathLike | None = None, seed: int = 0, progress: bool = False) -> LatentData:
    """`make_data` with the VAE of `config.vae` pre-trained on `offline` (or read from the cache); one VAE serves
    every seed of a run, where the official code trains one per seed."""
    return make_data(offline, cached_vae(config.vae, offline, dataset_id, cache_dir, seed, progress))


class PLASActor(NamedTuple):
    """The latent policy net(s) and, with the perturbation layer, its network on [s, decoded action]."""

    latent: MLP
    perturbation: MLP | None


class PLASState(NamedTuple):
    """Networks, their targets, Adam states and the key of one seed."""

    actor: PLASActor
    actor_target: PLASActor
    critics: tuple[MLP, MLP]
    critic_targets: tuple[MLP, MLP]
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    key: jax.Array


def latent_action(config: PLASConfig, actor: PLASActor, observations: jax.Array) -> jax.Array:
    """z = max_latent_action * tanh(net(s)) (algos.py:27-30)."""
    return config.max_latent_action * jnp.tanh(actor.latent(observations))


def policy_action(config: PLASConfig, actor: PLASActor, vae: ConditionalVAE,
                  observations: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(latent z, action): the decoded action decode(z, s), plus the perturbation phi * tanh(net([s, decoded]))
    clipped to the bounds when the layer is on (algos.py:51-62)."""
    latent = latent_action(config, actor, observations)
    decoded = vae.decode(latent, observations)
    if actor.perturbation is None:
        return latent, decoded
    shift = config.phi * jnp.tanh(actor.perturbation(critic_input(observations, decoded)))
    return latent, jnp.clip(decoded + shift, -vae.max_action, vae.max_action)


def act(config: PLASConfig, actor: PLASActor, vae: ConditionalVAE, observations: jax.Array) -> jax.Array:
    """The evaluation action of (normalised) observations: the policy is deterministic (algos.py:207-211)."""
    return policy_action(config, actor, vae, observations)[1]


def init(config: PLASConfig, data: LatentData, key: jax.Array) -> PLASState:
    """Fresh networks (targets equal to them) and Adam states."""
    latent_key, perturbation_key, critic1_key, critic2_key, key = jax.random.split(key, 5)
    obs_dim, action_dim = data.offline.obs_dim, data.offline.action_dim
    perturbation = (MLP((obs_dim + action_dim, *config.perturbation_hidden, action_dim), perturbation_key)
                    if config.perturbation else None)
    actor = PLASActor(MLP((obs_dim, *config.hidden, data.decoder.latent_dim), latent_key), perturbation)
    critics = tuple(MLP((obs_dim + action_dim, *config.hidden, 1), k) for k in (critic1_key, critic2_key))
    return PLASState(actor, actor, critics, critics, optax.adam(config.actor_lr).init(actor),
                     optax.adam(config.critic_lr).init(critics), key)


def clipped_double_q_target(q1: jax.Array, q2: jax.Array, lmbda: float) -> jax.Array:
    """lambda min(Q1, Q2) + (1 - lambda) max(Q1, Q2), BCQ's soft clipped double-Q (Fujimoto et al. 2019;
    algos.py:225)."""
    return lmbda * jnp.minimum(q1, q2) + (1.0 - lmbda) * jnp.maximum(q1, q2)


def update(config: PLASConfig, data: LatentData, state: PLASState) -> tuple[PLASState, dict]:
    """One critic step, one latent-policy step with the updated critics, then soft target updates."""
    key, batch_key = jax.random.split(state.key)
    batch = sample_batch(data.offline, batch_key, config.batch_size)
    _, next_actions = policy_action(config, state.actor_target, data.decoder, batch.next_observations)
    next_input = critic_input(batch.next_observations, next_actions)
    target_q = clipped_double_q_target(*(q(next_input)[:, 0] for q in state.critic_targets), config.lmbda)
    targets = batch.rewards + config.discount * (1.0 - batch.dones) * target_q

    def critic_loss(critics):
        inputs = critic_input(batch.observations, batch.actions)
        q1, q2 = (q(inputs)[:, 0] for q in critics)
        return jnp.mean((q1 - targets) ** 2) + jnp.mean((q2 - targets) ** 2), q1

    critic_optimizer = optax.adam(config.critic_lr)
    (loss_critic, q1), grads = jax.value_and_grad(critic_loss, has_aux=True)(state.critics)
    critics, critic_opt = apply_gradients(critic_optimizer, state.critics, state.critic_opt, grads)

    def actor_loss(actor):
        _, actions = policy_action(config, actor, data.decoder, batch.observations)
        return -jnp.mean(critics[0](critic_input(batch.observations, actions))[:, 0])

    loss_actor, grads = jax.value_and_grad(actor_loss)(state.actor)
    actor, actor_opt = apply_gradients(optax.adam(config.actor_lr), state.actor, state.actor_opt, grads)
    new_state = PLASState(actor, soft_update(state.actor_target, actor, config.tau), critics,
                          soft_update(state.critic_targets, critics, config.tau), actor_opt, critic_opt, key)
    return new_state, {"critic_loss": loss_critic, "actor_loss": loss_actor, "q_mean": jnp.mean(q1)}


_act = jax.jit(act, static_argnums=0)


def evaluate_host(config: PLASConfig, data: LatentData, state: PLASState, key: np.ndarray) -> dict[str, float]:
    """Mean return and normalised score of the policy over the evaluation's episodes; {} without one."""
    # Host copies: the seed's arrays live on whichever device trained it.
    actor, vae = jax.device_get(state.actor), jax.device_get(data.decoder)
    return evaluate_policy(data, lambda observations, _: _act(config, actor, vae, observations), key)


ALGORITHM = Algorithm(name="plas", config_type=PLASConfig, init=init, update=update, evaluate_host=evaluate_host,
                      prepare_data=prepare_data,
                      progress_metrics=("critic_loss", "normalized_score"), throughput_unit="updates")
