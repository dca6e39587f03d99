"""GFlowNet training with trajectory balance, detailed balance or sub-trajectory balance.

The runner contract: `init(config, key)`, `update(config, state)`, `evaluate(config, state, key)`.
One update samples `batch_size` trajectories on-policy (with optional epsilon / temperature exploration),
takes the loss value and its cotangents from the sampler's own terms, and back-propagates them through the
policy at the visited states only (see `gradients.py`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from fluxrl.core.config import ConfigError, check_choice, check_range
from fluxrl.core.nets import split_params
from fluxrl.core.runner import Algorithm
from fluxrl.envs.gflownet.base import MAX_ENUMERABLE_STATES, is_enumerable
from fluxrl.envs.gflownet.hypergrid import REWARD_PRESETS, Hypergrid, hypergrid_params
from fluxrl.gflownet import losses
from fluxrl.gflownet import metrics as gfn_metrics
from fluxrl.gflownet.gradients import policy_gradient
from fluxrl.gflownet.policy import MLPPolicy, SlotTransformerPolicy, StateTerms
from fluxrl.gflownet.sampler import sample_trajectories

ENVS = ("hypergrid", "bitseq")
LOSSES = ("tb", "db", "subtb")
BACKWARD_POLICIES = ("learned", "uniform")


@dataclass(frozen=True)
class GFlowNetConfig:
    """A GFlowNet run: environment, loss, model and optimiser."""

    env: str = "hypergrid"
    """Environment: hypergrid or bitseq."""
    ndim: int = 2
    """Hypergrid: number of dimensions D."""
    height: int = 8
    """Hypergrid: side length H (>= 2)."""
    reward: str = "standard"
    """Hypergrid reward preset: standard (R0=1e-3, R1=0.5, R2=2) or hard (R0=1e-4, R1=1, R2=3)."""
    r0: float | None = None
    """Hypergrid: override the preset's R0 (> 0)."""
    r1: float | None = None
    """Hypergrid: override the preset's R1 (>= 0)."""
    r2: float | None = None
    """Hypergrid: override the preset's R2 (>= 0)."""
    n: int = 120
    """Bit sequences: length in bits."""
    k: int = 8
    """Bit sequences: bits per word (one action fills one k-bit slot)."""
    num_modes: int = 60
    """Bit sequences: number of modes."""
    beta: float = 2.0
    """Bit sequences: log R(x) = -beta * (Hamming distance to the nearest mode)."""
    mode_seed: int = 0
    """Bit sequences: seed of the mode set and of the test set."""
    loss: str = "tb"
    """Training loss: tb, db or subtb."""
    subtb_lambda: float = 0.9
    """SubTB: weight lambda^(j-i) of a sub-trajectory of j-i transitions (> 0)."""
    backward_policy: str = "learned"
    """Backward policy P_B: learned or uniform."""
    batch_size: int = 16
    """Trajectories per iteration."""
    lr: float = 1e-3
    """Adam learning rate of the policy network."""
    log_z_lr: float = 0.1
    """Adam learning rate of log Z (TB only)."""
    hidden: int = 256
    """MLP policy (hypergrid): units per hidden layer."""
    layers: int = 2
    """MLP policy (hypergrid): number of hidden layers."""
    d_model: int = 64
    """Transformer policy (bitseq): model width."""
    heads: int = 8
    """Transformer policy (bitseq): attention heads."""
    transformer_layers: int = 3
    """Transformer policy (bitseq): encoder layers."""
    epsilon: float = 0.0
    """Exploration: probability mass mixed in uniformly over valid actions when sampling, in [0, 1]."""
    temperature: float = 1.0
    """Exploration: sampling uses softmax(logits / temperature) (> 0)."""
    grad_chunk_rows: int = 256
    """Visited states per chunk of the gradient pass (memory vs. speed; no effect on results)."""
    test_backward_samples: int = 10
    """Bit sequences: backward trajectories per test sequence in the log p estimate."""
    test_set_size: int = 7200
    """Bit sequences: test sequences used for the Spearman correlation (the reference uses all 7200)."""

    def __post_init__(self):
        check_choice("env", self.env, ENVS)
        check_choice("loss", self.loss, LOSSES)
        check_choice("backward_policy", self.backward_policy, BACKWARD_POLICIES)
        check_choice("reward", self.reward, tuple(REWARD_PRESETS))
        for name in ("batch_size", "hidden", "layers", "d_model", "heads", "transformer_layers",
                     "grad_chunk_rows", "test_backward_samples", "test_set_size"):
            check_range(name, getattr(self, name), 1)
        check_range("lr", self.lr, 0.0, low_open=True)
        check_range("log_z_lr", self.log_z_lr, 0.0)
        check_range("subtb_lambda", self.subtb_lambda, 0.0, low_open=True)
        check_range("epsilon", self.epsilon, 0.0, 1.0)
        check_range("temperature", self.temperature, 0.0, low_open=True)
        check_range("beta", self.beta, 0.0)
        if self.env == "bitseq" and self.d_model % self.heads:
            raise ConfigError(f"d_model must be a multiple of heads, got d_model={self.d_model}, heads={self.heads}.")
        make_env(self)  # validates the environment's own fields


def make_env(config: GFlowNetConfig):
    """The (static) environment and its (traced) reward parameters for a config."""
    if config.env == "hypergrid":
        return Hypergrid(config.ndim, config.height), hypergrid_params(config.reward, config.r0, config.r1, config.r2)
    from fluxrl.envs.gflownet.bitseq import BitSequence, bitseq_params

    env = BitSequence(n=config.n, k=config.k, num_modes=config.num_modes, mode_seed=config.mode_seed)
    return env, bitseq_params(env, beta=config.beta)


@functools.lru_cache(maxsize=32)
def _static(config: GFlowNetConfig):
    """(env, policy static part): everything of a run that is fixed by its config."""
    env, _ = make_env(config)
    # Shapes only: the static part needs no real weights, and initialising a transformer costs seconds.
    abstract = eqx.filter_eval_shape(_make_policy, config, env, jax.random.PRNGKey(0))
    return env, split_params(abstract)[1]


def _make_policy(config: GFlowNetConfig, env, key: jax.Array):
    if config.env == "bitseq":
        return SlotTransformerPolicy(env, config.d_model, config.heads, config.transformer_layers, key)
    return MLPPolicy(env, config.hidden, config.layers, key)


def _optimizers(config: GFlowNetConfig):
    return optax.adam(config.lr), optax.adam(config.log_z_lr)


class GFlowNetState(NamedTuple):
    """Everything a GFlowNet run needs; a pytree of arrays."""

    policy: Any  # the policy network's arrays
    log_z: jax.Array
    opt_state: Any
    env_params: Any
    modes_hit: jax.Array  # [num_modes] bool: modes some training sample has hit so far
    key: jax.Array
    iteration: jax.Array


def init(config: GFlowNetConfig, key: jax.Array) -> GFlowNetState:
    """A fresh run: a random policy, log Z = 0, empty optimiser state."""
    env, env_params = make_env(config)
    policy_key, key = jax.random.split(key)
    policy = split_params(_make_policy(config, env, policy_key))[0]
    log_z = jnp.zeros(())
    policy_opt, log_z_opt = _optimizers(config)
    return GFlowNetState(
        policy=policy, log_z=log_z, opt_state=(policy_opt.init(policy), log_z_opt.init(log_z)),
        env_params=env_params, modes_hit=jnp.zeros(env.num_modes, bool), key=key, iteration=jnp.int32(0))


def batch_loss(config: GFlowNetConfig, terms: StateTerms, log_reward: jax.Array, length: jax.Array,
               log_z: jax.Array) -> jax.Array:
    """Per-trajectory values [B] of the configured loss."""
    if config.loss == "tb":
        return losses.trajectory_balance(terms.log_pf, terms.log_pb, log_reward, length, log_z)
    if config.loss == "db":
        return losses.detailed_balance(terms.log_pf, terms.log_pb, terms.log_flow, log_reward, length)
    return losses.subtrajectory_balance(terms.log_pf, terms.log_pb, terms.log_flow, log_reward, length,
                                        config.subtb_lambda)


def update(config: GFlowNetConfig, state: GFlowNetState) -> tuple[GFlowNetState, dict]:
    """One iteration: sample a batch on-policy, one Adam step on the loss."""
    env, policy_static = _static(config)
    uniform_pb = config.backward_policy == "uniform"
    key, sample_key = jax.random.split(state.key)
    policy = eqx.combine(state.policy, policy_static)
    trajectories, terms = sample_trajectories(
        policy, env, state.env_params, sample_key, config.batch_size, uniform_pb, config.epsilon,
        config.temperature)

    def mean_loss(terms, log_z):
        return jnp.mean(batch_loss(config, terms, trajectories.log_reward, trajectories.length, log_z))

    loss, (terms_cotangent, log_z_grad) = jax.value_and_grad(mean_loss, argnums=(0, 1))(terms, state.log_z)
    policy_grad = policy_gradient(state.policy, policy_static, env, trajectories, terms_cotangent, uniform_pb,
                                  config.grad_chunk_rows)
    policy_opt, log_z_opt = _optimizers(config)
    policy_updates, policy_opt_state = policy_opt.update(policy_grad, state.opt_state[0])
    log_z_updates, log_z_opt_state = log_z_opt.update(log_z_grad, state.opt_state[1])
    hits = jax.vmap(env.mode_hits, (None, 0))(state.env_params, trajectories.final_states)
    modes_hit = state.modes_hit | jnp.any(hits, axis=0)
    # DB and SubTB have no log Z parameter: their estimate is the learned flow of the initial state.
    log_z = state.log_z if config.loss == "tb" else jnp.mean(terms.log_flow[:, 0])
    new_state = GFlowNetState(
        policy=optax.apply_updates(state.policy, policy_updates),
        log_z=optax.apply_updates(state.log_z, log_z_updates), opt_state=(policy_opt_state, log_z_opt_state),
        env_params=state.env_params, modes_hit=modes_hit, key=key, iteration=state.iteration + 1)
    metrics = {
        "loss": loss, "log_z": log_z, "log_reward_mean": jnp.mean(trajectories.log_reward),
        "trajectory_length_mean": jnp.mean(trajectories.length.astype(jnp.float32)),
        "modes_found": jnp.sum(modes_hit).astype(jnp.float32),
    }
    return new_state, metrics


def policy_of(config: GFlowNetConfig, state: GFlowNetState):
    """The policy module of a (single-seed) state."""
    return eqx.combine(state.policy, _static(config)[1])


def terminal_distributions(config: GFlowNetConfig, state: GFlowNetState) -> tuple[np.ndarray, np.ndarray]:
    """(learned, target): the exact terminal distribution of P_F and R / Z, for an enumerable environment."""
    env = _static(config)[0]
    learned = gfn_metrics.exact_terminal_distribution(policy_of(config, state), env, state.env_params)
    return learned, gfn_metrics.target_distribution(env, state.env_params)


def evaluate(config: GFlowNetConfig, state: GFlowNetState, key: jax.Array) -> dict[str, float]:
    """Exact distribution metrics where the environment is enumerable; Spearman on the bit-sequence test set."""
    env = _static(config)[0]
    if is_enumerable(env) and env.num_states <= MAX_ENUMERABLE_STATES:
        return gfn_metrics.distribution_metrics(*terminal_distributions(config, state))
    if config.env == "bitseq":
        from fluxrl.gflownet.bitseq_eval import test_correlation

        return {"spearman": test_correlation(config, env, policy_of(config, state), state.env_params, key)}
    return {}


ALGORITHM = Algorithm(name="gflownet", config_type=GFlowNetConfig, init=init, update=update, evaluate=evaluate,
                      progress_metrics=("loss", "tv", "modes_found"), counters=("modes_found",))
