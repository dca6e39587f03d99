"""The conditional VAE of PLAS (Zhou, Bajracharya & Held 2020; the VAE of BCQ, Fujimoto et al. 2019): a
state-conditioned generative model of the dataset's actions, pre-trained once and frozen during RL.

The encoder maps [s, a] to a diagonal Gaussian q(z | s, a); the decoder maps [s, z] to max_action * tanh(.), so every
latent decodes to an action inside the bounds. `decode(latent, observations)` is the whole interface an RL algorithm
needs, the same as a normalizing flow's, so a latent-space algorithm can take either (CNF's flow-vs-VAE ablation).
Settings are those of the official code (github:Wenxuan-Zhou/PLAS, `algos.py` and `main.py`; lines cited below).

A pre-trained VAE is cached on disk, keyed by the dataset's name, a hash of the config and the data's shape and
normalisation, and the seed: pre-training takes 500k steps, so every run on a dataset reuses it.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from fluxrl.core.config import check_range
from fluxrl.core.nets import MLP
from fluxrl.offline.common import OfflineData, network
from fluxrl.offline.model_cache import data_fingerprint, load_or_train, model_path

# The encoder's log standard deviation is clamped "for numerical stability" (algos.py:119).
LOG_STD_MIN, LOG_STD_MAX = -4.0, 15.0
# Bumped whenever the saved arrays change meaning, so an old cache file is never read as a new VAE.
CACHE_FORMAT = 1


@dataclass(frozen=True)
class VAEConfig:
    """The VAE and its pre-training, with the official defaults (github:Wenxuan-Zhou/PLAS)."""

    hidden: int = 750
    """Units per hidden layer of the encoder and the decoder (main.py:56, algos.py:98)."""
    depth: int = 2
    """Hidden layers of the encoder and of the decoder (algos.py:100-108)."""
    latent_per_action: int = 2
    """Latent size as a multiple of the action size: latent_dim = 2 x action_dim (main.py:106)."""
    kl_weight: float = 0.5
    """Weight of the KL term against the reconstruction MSE (algos.py:166) (>= 0)."""
    lr: float = 1e-4
    """Adam learning rate (main.py:54, algos.py:142) (> 0)."""
    steps: int = 500_000
    """Pre-training steps (main.py:55)."""
    batch_size: int = 100
    """Transitions per pre-training step (algos.py:146)."""

    def __post_init__(self):
        for name in ("hidden", "depth", "latent_per_action", "steps", "batch_size"):
            check_range(name, getattr(self, name), 1)
        check_range("kl_weight", self.kl_weight, 0.0)
        check_range("lr", self.lr, 0.0, low_open=True)


class ConditionalVAE(eqx.Module):
    """q(z | s, a) = N(mean, exp(log_std)^2) and a decoder a = max_action * tanh(net([s, z])); inputs may be one
    row or a batch of rows."""

    encoder: MLP  # [s, a] -> [mean, log_std], each latent_dim wide
    decoder: MLP  # [s, z] -> pre-tanh action
    max_action: float = eqx.field(static=True)
    latent_dim: int = eqx.field(static=True)

    def __init__(self, config: VAEConfig, obs_dim: int, action_dim: int, max_action: float, key: jax.Array):
        encoder_key, decoder_key = jax.random.split(key)
        self.latent_dim = config.latent_per_action * action_dim
        # One output layer for [mean, log_std]: the same function and initialisation as the official two heads,
        # whose PyTorch default initialisation depends on the fan-in only.
        self.encoder = network(obs_dim + action_dim, 2 * self.latent_dim, config.hidden, config.depth, encoder_key)
        self.decoder = network(obs_dim + self.latent_dim, action_dim, config.hidden, config.depth, decoder_key)
        self.max_action = float(max_action)

    def encode(self, observations: jax.Array, actions: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(mean, log_std) of q(z | s, a), log_std clamped to [-4, 15] (algos.py:113-120)."""
        out = self.encoder(jnp.concatenate([observations, actions], axis=-1))
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)

    def decode(self, latent: jax.Array, observations: jax.Array) -> jax.Array:
        """The action max_action * tanh(decoder([s, z])) of a latent z at state s, inside the bounds for any z
        (algos.py:127-138)."""
        return self.max_action * jnp.tanh(self.decoder(jnp.concatenate([observations, latent], axis=-1)))

    def reconstruct(self, observations: jax.Array, actions: jax.Array,
                    key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(decoded z, mean, log_std) for one reparameterised sample z ~ q(z | s, a) (algos.py:113-125)."""
        mean, log_std = self.encode(observations, actions)
        latent = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
        return self.decode(latent, observations), mean, log_std


def elbo_loss(vae: ConditionalVAE, observations: jax.Array, actions: jax.Array, key: jax.Array,
              kl_weight: float) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """(recon + kl_weight * KL, (recon, KL)): recon = mean (decoded - a)^2 and
    KL = -0.5 mean(1 + 2 log_std - mean^2 - std^2), both averaged over rows and dimensions (algos.py:160-167);
    the negative ELBO up to constants and the KL weight."""
    decoded, mean, log_std = vae.reconstruct(observations, actions, key)
    recon = jnp.mean((decoded - actions) ** 2)
    kl = -0.5 * jnp.mean(1.0 + 2.0 * log_std - mean ** 2 - jnp.exp(2.0 * log_std))
    return recon + kl_weight * kl, (recon, kl)


def _vae_step(config: VAEConfig, carry: tuple, observations: jax.Array, actions: jax.Array) -> tuple:
    """One Adam step of the ELBO loss on a uniformly drawn minibatch; returns (carry, [loss, recon, kl])."""
    vae, opt_state, key = carry
    key, batch_key, noise_key = jax.random.split(key, 3)
    rows = jax.random.randint(batch_key, (config.batch_size,), 0, observations.shape[0])
    loss = lambda model: elbo_loss(model, observations[rows], actions[rows], noise_key, config.kl_weight)
    (value, (recon, kl)), grads = eqx.filter_value_and_grad(loss, has_aux=True)(vae)
    updates, opt_state = optax.adam(config.lr).update(grads, opt_state, eqx.filter(vae, eqx.is_array))
    return (eqx.apply_updates(vae, updates), opt_state, key), jnp.stack([value, recon, kl])


# Module level, so every pre-training with the same config and shapes shares one compiled program; the dataset is
# an argument, not a constant folded into it.
@eqx.filter_jit
def _train_chunk(config: VAEConfig, carry: tuple, observations: jax.Array, actions: jax.Array,
                 length: int) -> tuple:
    """`length` steps; returns (carry, the mean [loss, recon, kl] over them)."""
    carry, losses = jax.lax.scan(lambda c, _: _vae_step(config, c, observations, actions), carry, None,
                                 length=length)
    return carry, jnp.mean(losses, axis=0)


def pretrain_vae(config: VAEConfig, observations: jax.Array, actions: jax.Array, max_action: float,
                 key: jax.Array, progress: bool = False, chunk: int = 1000) -> tuple[ConditionalVAE, dict]:
    """A VAE trained for `config.steps` Adam steps on uniformly drawn minibatches of (observations, actions), and
    its history: {"step", "loss", "recon_loss", "kl_loss"}, each loss averaged over every `chunk` steps."""
    from fluxrl.core.progress import Progress

    check_range("chunk", chunk, 1)
    observations, actions = jnp.asarray(observations, jnp.float32), jnp.asarray(actions, jnp.float32)
    init_key, key = jax.random.split(key)
    vae = ConditionalVAE(config, observations.shape[-1], actions.shape[-1], max_action, init_key)
    carry = (vae, optax.adam(config.lr).init(eqx.filter(vae, eqx.is_array)), key)
    bar = Progress(progress, config.steps, 0, ("loss",), "updates")
    done, rows = 0, []
    try:
        while done < config.steps:
            length = min(chunk, config.steps - done)
            began = time.perf_counter()
            carry, means = _train_chunk(config, carry, observations, actions, length)
            rows.append((done + length, *np.asarray(means).tolist()))
            done += length
            bar.advance(done, length / max(time.perf_counter() - began, 1e-9), {"loss": rows[-1][1]})
    finally:
        bar.close()
    table = np.asarray(rows, np.float64).reshape(-1, 4)
    history = {"step": table[:, 0].astype(np.int64), "loss": table[:, 1], "recon_loss": table[:, 2],
               "kl_loss": table[:, 3]}
    return carry[0], history


def default_cache_dir() -> Path:
    """Where pre-trained VAEs are kept: $FLUXRL_VAE_DIR, else $XDG_CACHE_HOME/fluxrl/vae, else ~/.cache."""
    if os.environ.get("FLUXRL_VAE_DIR"):
        return Path(os.environ["FLUXRL_VAE_DIR"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(cache) / "fluxrl" / "vae"


def cache_path(config: VAEConfig, data: OfflineData, dataset_id: str, cache_dir: str | os.PathLike | None,
               seed: int = 0) -> Path:
    """The file of the VAE pre-trained with `config` and `seed` on `data` named `dataset_id`."""
    fingerprint = {"format": CACHE_FORMAT, "config": dataclasses.asdict(config), "size": int(data.rewards.shape[0]),
                   **data_fingerprint(data)}
    return model_path(cache_dir if cache_dir is not None else default_cache_dir(), "", dataset_id, fingerprint, seed)


def cached_vae(config: VAEConfig, data: OfflineData, dataset_id: str, cache_dir: str | os.PathLike | None,
               seed: int = 0, progress: bool = False) -> ConditionalVAE:
    """The VAE pre-trained on `data`'s (normalised) observations and actions: read from the cache when there,
    else trained from PRNGKey(seed) and saved atomically; an unreadable cache file is trained anew and replaced."""
    template = ConditionalVAE(config, data.obs_dim, data.action_dim, data.max_action, jax.random.PRNGKey(0))

    def train():
        vae, _ = pretrain_vae(config, data.observations, data.actions, data.max_action, jax.random.PRNGKey(seed),
                              progress)
        return vae, None

    return load_or_train(cache_path(config, data, dataset_id, cache_dir, seed), template, train)
