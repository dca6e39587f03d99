"""CNF, Conservative Normalizing Flows (Akimov et al. 2022, arXiv 2211.11096): AWAC in the latent space of a
pre-trained, frozen, state-conditioned normalizing flow whose latent is the cube (-1, 1)^d.

The actor is a tanh-squashed Gaussian over latents; every latent decodes (`flows.StateFlow.decode`) to an action
the flow gives density to, so no out-of-distribution action is ever produced. As in the official code
(tinkoff-ai/cnf, cnf/awac.py):
- twin critics on (s, raw action), target y = r + gamma (1 - d) min_i Q_targ_i(s', decode(z', s')), z' ~ pi(s');
- after the critic step, with the updated critics: V(s) = min_i Q_i(s, decode(z, s)), z ~ pi(s);
  A = min_i Q_i(s, a) - V(s); w = min(exp(A / lambda), 100);
- actor loss mean(w |decode(z, s) - a|_1), z ~ pi(s) reparameterised, the gradient flowing through the frozen
  flow into the actor; soft updates of the critics' targets.
`decoder="vae"` swaps the flow for PLAS's VAE (latent actions scaled to +-`vae_latent_scale`), the paper's
"flow vs VAE" ablation; `prior="normal"` trains the flow with a normal prior, the "uniform vs normal" one, whose
policy reaches the whole real line through atanh as in the official RL path (`decoder_latent`).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from fluxrl.core.config import check_choice, check_range, refuse_unused
from fluxrl.core.nets import MLP
from fluxrl.core.runner import Algorithm
from fluxrl.offline.common import (OfflineData, apply_gradients, critic_input, min_q, network, sample_batch,
                                   soft_update)
from fluxrl.offline.latent import LatentData, latent_host_evaluator, make_latent_data
from fluxrl.offline.vae import VAEConfig

# The official TanhActor clamps its log standard deviation to [-20, 2] (cnf/actor_critic.py).
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


@dataclass(frozen=True)
class CNFConfig:
    """CNF with the official run config (configs/run_rl.py: 3x256 ReLU MLPs, Adam 3e-4, tau 2e-3, batch 512,
    lambda 1/3) and the flow's preset."""

    # Swept, these become one vmapped axis of a compiled program (`fluxrl.sweep.traced`): each enters the latent
    # AWAC update only as a number in array arithmetic; the flow's own options are static.
    TRACED_FIELDS: ClassVar[tuple[str, ...]] = ("lr", "discount", "tau", "awac_lambda", "max_weight")

    flow: str = "cpu"
    """Flow preset (fluxrl.offline.flows.PRESETS): `paper` (12 blocks, 256 wide) or `cpu` (smaller, named)."""
    prior: str = "uniform"
    """The flow's latent prior: `uniform` on (-1, 1)^d (CNF) or `normal` (the paper's ablation; the policy's latent
    then reaches the whole line through atanh, as the official RL path)."""
    decoder: str = "flow"
    """What the latent decodes through: `flow` (CNF) or `vae` (PLAS's VAE: the flow-vs-VAE ablation)."""
    flow_epochs: Optional[int] = None
    """Pre-training epochs of the flow (None: with the `paper` preset the official 50 expert / 100 medium / 350
    replay by dataset name, else the preset's)."""
    vae_latent_scale: float = 2.0
    """With `decoder=vae`: latent actions lie in +-this (PLAS's max_latent_action)."""
    vae: VAEConfig = field(default_factory=VAEConfig)
    """With `decoder=vae`: the VAE and its pre-training (PLAS's; the same config shares PLAS's cached VAE)."""
    batch_size: int = 512
    """Transitions per update."""
    hidden: int = 256
    """Units per hidden layer of the actor and the critics."""
    depth: int = 3
    """Hidden layers of the actor and the critics (the official MLP(n_layers=4))."""
    lr: float = 3e-4
    """Adam learning rate of the actor and the critics (> 0)."""
    discount: float = 0.99
    """Discount gamma, in [0, 1]."""
    tau: float = 2e-3
    """Soft target update rate, in (0, 1]."""
    awac_lambda: float = 1.0 / 3.0
    """Temperature lambda of the advantage weights exp(A / lambda) (> 0)."""
    max_weight: float = 100.0
    """Advantage weights are clipped at this (> 0)."""

    def __post_init__(self):
        from fluxrl.offline.flows import PRESETS

        check_choice("flow", self.flow, tuple(PRESETS))
        check_choice("prior", self.prior, ("uniform", "normal"))
        check_choice("decoder", self.decoder, ("flow", "vae"))
        if self.flow_epochs is not None:
            check_range("flow_epochs", self.flow_epochs, 1)
        for name in ("batch_size", "hidden", "depth"):
            check_range(name, getattr(self, name), 1)
        for name in ("lr", "awac_lambda", "max_weight", "vae_latent_scale"):
            check_range(name, getattr(self, name), 0.0, low_open=True)
        check_range("discount", self.discount, 0.0, 1.0)
        check_range("tau", self.tau, 0.0, 1.0, low_open=True)
        if self.decoder == "vae":
            refuse_unused(self, ("flow", "prior", "flow_epochs"), "with decoder=vae (no flow is trained)")
        else:
            refuse_unused(self, ("vae", "vae_latent_scale"), "with decoder=flow (no VAE is trained)")


class CNFState(NamedTuple):
    """The latent actor, the twin critics and their targets, Adam states and the key of one seed."""

    actor: MLP  # normalised state -> [mean, log_std] of the pre-tanh latent
    critics: tuple[MLP, MLP]
    critic_targets: tuple[MLP, MLP]
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    key: jax.Array


def flow_config(config: CNFConfig, dataset_id: str = ""):
    """The flow's config on the dataset named `dataset_id`: the preset with the prior of `config` and its
    `flow_epochs`, else the `paper` preset's official schedule by dataset kind, else the preset's epochs."""
    from fluxrl.offline.flows import PRESETS, paper_epochs

    preset = PRESETS[config.flow]
    if config.flow_epochs is not None:
        epochs = config.flow_epochs
    elif config.flow == "paper":
        epochs = paper_epochs(dataset_id)
    else:
        epochs = preset.epochs
    return dataclasses.replace(preset, prior=config.prior, epochs=epochs)


def prepare_data(config: CNFConfig, offline: OfflineData, dataset_id: str,
                 cache_dir: str | os.PathLike | None = None, seed: int = 0, progress: bool = False) -> LatentData:
    """The run's shared `data`: the dataset and its decoder, pre-trained on it (or read from the cache); one
    decoder serves every seed."""
    from fluxrl.offline import vae

    if config.decoder == "vae":  # the same VAE PLAS trains, from the same cache
        decoder = vae.cached_vae(config.vae, offline, dataset_id, cache_dir, seed, progress)
    else:
        from fluxrl.offline.flow_training import cached_flow

        directory = cache_dir if cache_dir is not None else vae.default_cache_dir().parent / "flows"
        decoder = cached_flow(flow_config(config, dataset_id), offline, dataset_id, directory, seed, progress)
    return make_latent_data(offline, decoder)


def latent_dim(data: LatentData) -> int:
    """Size of the decoder's latent."""
    return int(data.decoder.latent_dim)


def decoder_latent(config: CNFConfig, squashed: jax.Array) -> jax.Array:
    """The decoder's latent for the actor's tanh output in (-1, 1): the flow's cube as it is, a normal prior's whole
    line through atanh, or PLAS's box +-`vae_latent_scale` in a VAE's latent."""
    from fluxrl.offline.flows import TANH_CLAMP

    if config.decoder == "vae":
        return config.vae_latent_scale * squashed
    if config.prior == "normal":
        # The official RL path builds every flow with the uniform prior's final tanh (train_rl.py:89-94); that layer
        # has no parameters, so a normal-prior checkpoint loads, and the actor's output goes through its inverse,
        # clamp to +-(1 - 1e-5) then atanh (invertible_tanh.py:39-43): the latent reaches about +-6.1, the normal
        # prior's whole mass, where the cube alone would cut off about a third of each dimension's.
        return jnp.arctanh(jnp.clip(squashed, -TANH_CLAMP, TANH_CLAMP))
    return squashed


def sample_latent(config: CNFConfig, actor: MLP, observations: jax.Array, key: jax.Array) -> jax.Array:
    """The decoder's latent of tanh(mu + sigma eps), reparameterised (the official TanhActor's rsample)."""
    mean, log_std = jnp.split(actor(observations), 2, axis=-1)
    std = jnp.exp(jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX))
    return decoder_latent(config, jnp.tanh(mean + std * jax.random.normal(key, mean.shape)))


def act(config: CNFConfig, actor: MLP, decoder, observations: jax.Array, key: jax.Array) -> jax.Array:
    """Evaluation actions: a sampled latent, decoded (the official evaluation leaves the actor in training mode,
    so it samples too)."""
    return decoder.decode(sample_latent(config, actor, observations, key), observations)


def init(config: CNFConfig, data: LatentData, key: jax.Array) -> CNFState:
    """Fresh networks (targets equal to them) and Adam states."""
    offline = data.offline
    actor_key, critic1_key, critic2_key, key = jax.random.split(key, 4)
    actor = network(offline.obs_dim, 2 * latent_dim(data), config.hidden, config.depth, actor_key)
    critics = tuple(network(offline.obs_dim + offline.action_dim, 1, config.hidden, config.depth, k)
                    for k in (critic1_key, critic2_key))
    optimizer = optax.adam(config.lr)
    return CNFState(actor, critics, critics, optimizer.init(actor), optimizer.init(critics), key)


def update(config: CNFConfig, data: LatentData, state: CNFState) -> tuple[CNFState, dict]:
    """One critic step, one actor step through the frozen decoder with the updated critics, soft target updates."""
    key, batch_key, next_key, value_key, policy_key = jax.random.split(state.key, 5)
    batch = sample_batch(data.offline, batch_key, config.batch_size)
    decoder = data.decoder
    optimizer = optax.adam(config.lr)

    next_actions = decoder.decode(sample_latent(config, state.actor, batch.next_observations, next_key),
                                  batch.next_observations)
    targets = batch.rewards + config.discount * (1.0 - batch.dones) * min_q(
        state.critic_targets, batch.next_observations, next_actions)

    def critic_loss(critics):
        inputs = critic_input(batch.observations, batch.actions)
        q_values = [q(inputs)[:, 0] for q in critics]
        return sum(jnp.mean((q - targets) ** 2) for q in q_values), q_values[0]

    (loss_critic, q1), grads = jax.value_and_grad(critic_loss, has_aux=True)(state.critics)
    critics, critic_opt = apply_gradients(optimizer, state.critics, state.critic_opt, grads)

    value_actions = decoder.decode(sample_latent(config, state.actor, batch.observations, value_key),
                                   batch.observations)
    advantage = min_q(critics, batch.observations, batch.actions) - min_q(critics, batch.observations,
                                                                            value_actions)
    weights = jnp.minimum(jnp.exp(advantage / config.awac_lambda), config.max_weight)

    def actor_loss(actor):
        policy_actions = decoder.decode(sample_latent(config, actor, batch.observations, policy_key),
                                        batch.observations)
        return jnp.mean(weights[:, None] * jnp.abs(policy_actions - batch.actions))

    loss_actor, grads = jax.value_and_grad(actor_loss)(state.actor)
    actor, actor_opt = apply_gradients(optimizer, state.actor, state.actor_opt, grads)
    critic_targets = soft_update(state.critic_targets, critics, config.tau)
    new_state = CNFState(actor, critics, critic_targets, actor_opt, critic_opt, key)
    return new_state, {"critic_loss": loss_critic, "actor_loss": loss_actor, "q_mean": jnp.mean(q1),
                       "advantage_weight": jnp.mean(weights)}


ALGORITHM = Algorithm(name="cnf", config_type=CNFConfig, init=init, update=update, prepare_data=prepare_data,
                      evaluate_host=latent_host_evaluator(act), progress_metrics=("critic_loss", "normalized_score"),
                      throughput_unit="updates")
