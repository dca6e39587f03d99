"""GFlowNet training with trajectory balance, detailed balance or sub-trajectory balance, and exploration.

The runner contract: `init(config, key)`, `update(config, state)`, `evaluate(config, state, key)`.
One update samples trajectories, takes the loss value and its cotangents from the terms of the model being
trained (the sampler's own for on-policy trajectories, re-computed under the model's parameters for any
other), and back-propagates them through the policy at the visited states only (see `gradients.py`).

Exploration (`explore`): `none` and `epsilon` train on `batch_size` trajectories of the main policy; `replay`,
`lggfn`, `teacher` and `sagfn` train on a mix: a fraction `aux_fraction` of the batch comes from a replay
buffer or from an auxiliary GFlowNet (see `lggfn.py` for the auxiliary rewards), the rest is on-policy.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated, Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tyro

from fluxrl.core.config import ConfigError, check_choice, check_range
from fluxrl.core.nets import split_params
from fluxrl.core.runner import Algorithm
from fluxrl.envs.gflownet.base import MAX_ENUMERABLE_STATES, is_enumerable
from fluxrl.envs.gflownet.hypergrid import REWARD_PRESETS, Hypergrid, hypergrid_params
from fluxrl.gflownet import lggfn, losses
from fluxrl.gflownet import metrics as gfn_metrics
from fluxrl.gflownet.gradients import policy_gradient
from fluxrl.gflownet.policy import MLPPolicy, SlotTransformerPolicy, StateTerms, TemperedPolicy, policy_input
from fluxrl.gflownet import soft_rl
from fluxrl.gflownet.replay import (PrioritizedReplay, ReplayBuffer, per_add, per_init, per_sample, per_update,
                                    replay_add, replay_init, replay_sample)
from fluxrl.gflownet.sampler import Trajectories, rescore_trajectories, sample_trajectories

ENVS = ("hypergrid", "bitseq", "parentheses", "structure")
LOSSES = ("tb", "db", "subtb", "sdqn", "mdqn")
SOFT_RL = ("sdqn", "mdqn")
# Munchausen clip l0 per environment (Tiapkin et al. 2024); other environments use the hypergrid value.
MUNCHAUSEN_L0 = {"hypergrid": -100.0, "bitseq": -25.0}
BACKWARD_POLICIES = ("learned", "uniform")
EXPLORE = ("none", "epsilon", "replay", "lggfn", "teacher", "sagfn")
AUXILIARY = ("lggfn", "teacher", "sagfn")


@dataclass(frozen=True)
class GFlowNetConfig:
    """A GFlowNet run: environment, loss, model and optimiser."""

    env: str = "hypergrid"
    """Environment: hypergrid, bitseq, parentheses (balanced parentheses) or structure (Bayesian structure
    learning of a DAG)."""
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
    max_tokens: int = 32
    """Parentheses: maximum sequence length in tokens."""
    num_nodes: int = 5
    """Structure learning: variables (nodes) of the DAG; exact metrics up to 5."""
    num_samples: int = 100
    """Structure learning: observations in the seeded linear-Gaussian dataset."""
    graph_seed: int = 0
    """Structure learning: seed of the ground-truth graph and its data."""
    loss: str = "tb"
    """Training loss: tb, db, subtb, or soft-RL training: sdqn (soft DQN) or mdqn (Munchausen DQN)."""
    subtb_lambda: float = 0.9
    """SubTB: weight lambda^(j-i) of a sub-trajectory of j-i transitions (> 0)."""
    backward_policy: str = "learned"
    """Backward policy P_B: learned or uniform (sdqn / mdqn always use the uniform one: it defines their reward)."""
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
    explore: str = "none"
    """Exploration: none (on-policy), epsilon (needs --epsilon > 0), replay (past trajectories), lggfn
    (loss-guided auxiliary GFlowNet), teacher (multiplicative adaptive teacher), sagfn (auxiliary with RND
    novelty)."""
    aux_fraction: float = 0.5
    """replay / lggfn / teacher / sagfn: fraction of the main model's batch taken from the replay buffer or
    the auxiliary GFlowNet's samples, in [0, 1)."""
    aux_lambda: Annotated[float, tyro.conf.arg(name="lambda")] = 1.0
    """lggfn / teacher: weight lambda of the main model's loss in the auxiliary reward (> 0)."""
    replay_capacity: int = 1000
    """replay: trajectories kept in the buffer (the oldest are overwritten)."""
    sagfn_beta_e: float = 1.0
    """sagfn: weight of log R in the auxiliary reward."""
    sagfn_beta_i: float = 1.0
    """sagfn: weight of the log RND novelty in the auxiliary reward."""
    sagfn_beta_sn: float = 1.0
    """sagfn: overall scale of the auxiliary log-reward."""
    rnd_lr: float = 1e-3
    """sagfn: Adam learning rate of the RND predictor."""
    munchausen_alpha: float = 0.15
    """mdqn: weight alpha of the Munchausen term; the temperature is tau = 1 / (1 - alpha), in [0, 1)."""
    munchausen_l0: float | None = None
    """mdqn: lower clip l0 of tau * log pi in the Munchausen term (< 0); default -100, -25 on bit sequences."""
    leaf_coefficient: float = 1.0
    """sdqn / mdqn: weight of the TD errors of transitions into a terminal object (the paper uses 2-5 on bit
    sequences)."""
    target_polyak: float = 0.25
    """sdqn / mdqn: target network update theta_target += polyak * (theta - theta_target), in (0, 1]; 1 is a
    hard copy."""
    target_every: int = 1
    """sdqn / mdqn: iterations between target network updates."""
    replay_batch_size: int = 256
    """sdqn / mdqn: transitions replayed per iteration."""
    per_capacity: int = 100_000
    """sdqn / mdqn: transitions kept in the prioritised replay buffer."""
    per_alpha: float = 0.5
    """sdqn / mdqn: priority exponent alpha (0 = uniform replay)."""
    per_beta: float = 0.0
    """sdqn / mdqn: importance-sampling exponent beta at the start, annealed linearly to per_beta_final."""
    per_beta_final: float = 1.0
    """sdqn / mdqn: importance-sampling exponent beta after per_beta_iterations."""
    per_beta_iterations: int = 10_000
    """sdqn / mdqn: iterations over which beta is annealed."""
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
                     "grad_chunk_rows", "test_backward_samples", "test_set_size", "num_samples"):
            check_range(name, getattr(self, name), 1)
        check_range("lr", self.lr, 0.0, low_open=True)
        check_range("log_z_lr", self.log_z_lr, 0.0)
        check_range("subtb_lambda", self.subtb_lambda, 0.0, low_open=True)
        check_range("munchausen_alpha", self.munchausen_alpha, 0.0, 1.0, high_open=True)
        if self.munchausen_l0 is not None:
            check_range("munchausen_l0", self.munchausen_l0, high=0.0, high_open=True)
        check_range("leaf_coefficient", self.leaf_coefficient, 0.0, low_open=True)
        check_range("target_polyak", self.target_polyak, 0.0, 1.0, low_open=True)
        for name in ("target_every", "replay_batch_size", "per_capacity", "per_beta_iterations"):
            check_range(name, getattr(self, name), 1)
        check_range("per_alpha", self.per_alpha, 0.0)
        check_range("per_beta", self.per_beta, 0.0, 1.0)
        check_range("per_beta_final", self.per_beta_final, 0.0, 1.0)
        if self.loss in SOFT_RL and self.explore != "none" and self.explore != "epsilon":
            raise ConfigError(f"loss={self.loss} has its own replay; explore must be none or epsilon, got "
                              f"{self.explore}.")
        check_range("epsilon", self.epsilon, 0.0, 1.0)
        check_range("temperature", self.temperature, 0.0, low_open=True)
        check_range("beta", self.beta, 0.0)
        check_choice("explore", self.explore, EXPLORE)
        check_range("aux_fraction", self.aux_fraction, 0.0, 1.0, high_open=True)
        check_range("aux_lambda", self.aux_lambda, 0.0, low_open=True)
        check_range("replay_capacity", self.replay_capacity, 1)
        check_range("rnd_lr", self.rnd_lr, 0.0, low_open=True)
        if self.explore == "epsilon" and self.epsilon == 0.0:
            raise ConfigError("explore=epsilon needs --epsilon > 0 (the probability of a uniform action).")
        if self.explore in ("replay",) + AUXILIARY and self.other_batch_size() == 0:
            raise ConfigError(f"explore={self.explore} needs aux_fraction * batch_size >= 1, got "
                              f"aux_fraction={self.aux_fraction}, batch_size={self.batch_size}.")
        if self.env == "bitseq" and self.d_model % self.heads:
            raise ConfigError(f"d_model must be a multiple of heads, got d_model={self.d_model}, heads={self.heads}.")
        make_env(self)  # validates the environment's own fields

    def other_batch_size(self) -> int:
        """Trajectories of the main model's batch that come from the replay buffer or the auxiliary model."""
        if self.explore not in ("replay",) + AUXILIARY:
            return 0
        return int(round(self.aux_fraction * self.batch_size))


def make_env(config: GFlowNetConfig):
    """The (static) environment and its (traced) reward parameters for a config."""
    if config.env == "hypergrid":
        return Hypergrid(config.ndim, config.height), hypergrid_params(config.reward, config.r0, config.r1, config.r2)
    if config.env == "bitseq":
        from fluxrl.envs.gflownet.bitseq import BitSequence, bitseq_params

        env = BitSequence(n=config.n, k=config.k, num_modes=config.num_modes, mode_seed=config.mode_seed)
        return env, bitseq_params(env, beta=config.beta)
    if config.env == "parentheses":
        from fluxrl.envs.gflownet.parentheses import Parentheses

        env = Parentheses(config.max_tokens)
        return env, env.default_params()
    return _structure(config.num_nodes, config.num_samples, config.graph_seed)


@functools.lru_cache(maxsize=8)
def _structure(num_nodes: int, num_samples: int, graph_seed: int):
    """The structure-learning env and its score table (cached: the table costs 2^d BGe evaluations)."""
    from fluxrl.envs.gflownet.structure import structure_env, structure_params

    env = structure_env(num_nodes, num_samples, graph_seed)
    return env, structure_params(env)


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


class AuxiliaryModel(NamedTuple):
    """A second GFlowNet (arrays, log Z, optimiser state) that samples for the main one."""

    policy: Any
    log_z: jax.Array
    opt_state: Any


class GFlowNetState(NamedTuple):
    """Everything a GFlowNet run needs; a pytree of arrays."""

    policy: Any  # the main policy network's arrays
    log_z: jax.Array
    opt_state: Any
    env_params: Any
    modes_hit: jax.Array  # uint32 bit set over the modes: those some sample of the run has hit so far
    key: jax.Array
    iteration: jax.Array
    aux: AuxiliaryModel | None = None  # explore in lggfn / teacher / sagfn
    replay: ReplayBuffer | None = None  # explore = replay
    rnd: lggfn.RND | None = None  # explore = sagfn
    target: Any = None  # sdqn / mdqn: the target Q-network's arrays
    per: PrioritizedReplay | None = None  # sdqn / mdqn: prioritised replay of transitions


def _fresh_model(config: GFlowNetConfig, env, key: jax.Array) -> tuple[Any, jax.Array, Any]:
    policy = split_params(_make_policy(config, env, key))[0]
    log_z = jnp.zeros(())
    policy_opt, log_z_opt = _optimizers(config)
    return policy, log_z, (policy_opt.init(policy), log_z_opt.init(log_z))


def init(config: GFlowNetConfig, key: jax.Array) -> GFlowNetState:
    """A fresh run: random policies, log Z = 0, empty optimiser states and buffers."""
    env, env_params = make_env(config)
    policy_key, aux_key, rnd_key, key = jax.random.split(key, 4)
    policy, log_z, opt_state = _fresh_model(config, env, policy_key)
    aux = AuxiliaryModel(*_fresh_model(config, env, aux_key)) if config.explore in AUXILIARY else None
    replay = None
    if config.explore == "replay":
        example = jax.eval_shape(lambda k: sample_trajectories(
            eqx.combine(policy, _static(config)[1]), env, env_params, k, 1, True)[0], key)
        replay = replay_init(example, config.replay_capacity)
    rnd = None
    if config.explore == "sagfn":
        rnd = lggfn.rnd_init(env.obs_size, RND_FEATURES, config.hidden, rnd_key, config.rnd_lr)
    target = per = None
    if config.loss in SOFT_RL:
        target = policy
        first = env.reset(env_params, key)
        per = per_init(soft_rl.Transition(first, jnp.int32(0), jnp.float32(0.0), first, jnp.array(False)),
                       config.per_capacity)
    return GFlowNetState(
        policy=policy, log_z=log_z, opt_state=opt_state, env_params=env_params,
        modes_hit=_empty_mode_set(env), key=key, iteration=jnp.int32(0), aux=aux, replay=replay,
        rnd=rnd, target=target, per=per)


# Output size of the RND target and predictor networks.
RND_FEATURES = 64


def batch_loss(config: GFlowNetConfig, terms: StateTerms, log_reward: jax.Array, length: jax.Array,
               log_z: jax.Array, loss: str | None = None) -> jax.Array:
    """Per-trajectory values [B] of the configured loss (or of `loss`, when given)."""
    loss = loss or config.loss
    if loss == "tb":
        return losses.trajectory_balance(terms.log_pf, terms.log_pb, log_reward, length, log_z)
    if loss == "db":
        return losses.detailed_balance(terms.log_pf, terms.log_pb, terms.log_flow, log_reward, length)
    return losses.subtrajectory_balance(terms.log_pf, terms.log_pb, terms.log_flow, log_reward, length,
                                        config.subtb_lambda)


def _train_step(config: GFlowNetConfig, loss_name: str, model: tuple, trajectories: Trajectories,
                terms: StateTerms, log_reward: jax.Array) -> tuple[tuple, jax.Array]:
    """One Adam step of a model (policy, log Z, optimiser state) on the mean loss over `trajectories`, whose
    kept outputs and terms must be the model's own; returns the new model and the mean loss."""
    env, policy_static = _static(config)
    policy, log_z, opt_state = model

    def mean_loss(terms, log_z):
        return jnp.mean(batch_loss(config, terms, log_reward, trajectories.length, log_z, loss_name))

    loss, (terms_cotangent, log_z_grad) = jax.value_and_grad(mean_loss, argnums=(0, 1))(terms, log_z)
    policy_grad = policy_gradient(policy, policy_static, env, trajectories, terms_cotangent,
                                  config.backward_policy == "uniform", config.grad_chunk_rows)
    policy_opt, log_z_opt = _optimizers(config)
    policy_updates, policy_opt_state = policy_opt.update(policy_grad, opt_state[0])
    log_z_updates, log_z_opt_state = log_z_opt.update(log_z_grad, opt_state[1])
    new_model = (optax.apply_updates(policy, policy_updates), optax.apply_updates(log_z, log_z_updates),
                 (policy_opt_state, log_z_opt_state))
    return new_model, loss


def _concat(*trees):
    return jax.tree.map(lambda *xs: jnp.concatenate(xs), *trees)


def _num_modes(env) -> int:
    return getattr(env, "num_modes", 0)


def _empty_mode_set(env) -> jax.Array:
    """A bit set over the environment's modes, packed 32 to a word (parentheses have ~49 million modes)."""
    return jnp.zeros((_num_modes(env) + 31) // 32, jnp.uint32)


def _modes_hit(env, env_params, modes_hit: jax.Array, final_states) -> jax.Array:
    """The mode bit set with the modes any of a batch of terminal states hits added."""
    if _num_modes(env) == 0:
        return modes_hit
    bit = lambda index: jnp.left_shift(jnp.uint32(1), (index % 32).astype(jnp.uint32))
    if hasattr(env, "mode_index"):  # at most one mode per object, from a set too big for multi-hot rows
        index = jax.vmap(env.mode_index, (None, 0))(env_params, final_states)
        word = jnp.where(index < _num_modes(env), index // 32, modes_hit.shape[0])
        # Objects sharing a word write that word together: each writes the OR of all their bits, so the
        # duplicate writes agree and the scatter is deterministic.
        same_word = word[:, None] == word[None, :]
        bits = jnp.where(same_word, bit(index)[None, :], jnp.uint32(0))
        combined = jax.lax.reduce(bits, jnp.uint32(0), jax.lax.bitwise_or, (1,))
        return modes_hit.at[word].set(modes_hit.at[word].get(mode="fill", fill_value=0) | combined, mode="drop")
    hits = jnp.any(jax.vmap(env.mode_hits, (None, 0))(env_params, final_states), axis=0)
    padded = jnp.zeros(modes_hit.shape[0] * 32, bool).at[:hits.shape[0]].set(hits).reshape(-1, 32)
    words = jnp.sum(jnp.where(padded, bit(jnp.arange(32)), jnp.uint32(0)), axis=1, dtype=jnp.uint32)
    return modes_hit | words


def modes_found(modes_hit: jax.Array) -> jax.Array:
    """How many modes a mode bit set holds."""
    return jnp.sum(jax.lax.population_count(modes_hit).astype(jnp.int32))


def soft_rl_tau(config: GFlowNetConfig) -> float:
    """Temperature of the soft-RL policy softmax(Q / tau): 1 for sdqn, 1 / (1 - alpha) for mdqn, so that the
    effective entropy coefficient (1 - alpha) * tau is 1."""
    return 1.0 / (1.0 - config.munchausen_alpha) if config.loss == "mdqn" else 1.0


def _q_values(net, env, states) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(Q [N, A], valid-action mask [N, A], V [N]) of a batch of states under a dueling Q-network."""
    forward_logits, _, log_flow = jax.vmap(lambda s: net(policy_input(net, env, s)))(states)
    mask = jax.vmap(env.forward_mask)(states)
    return soft_rl.dueling_q(forward_logits, log_flow, mask), mask, log_flow


def _soft_rl_update(config: GFlowNetConfig, state: GFlowNetState) -> tuple[GFlowNetState, dict]:
    """One soft-RL iteration: sample `batch_size` trajectories with softmax(Q / tau), store their transitions,
    one Adam step on a prioritised replay batch, target network update."""
    env, policy_static = _static(config)
    tau = soft_rl_tau(config)
    key, sample_key, replay_key = jax.random.split(state.key, 3)
    q_net = eqx.combine(state.policy, policy_static)
    trajectories, _ = sample_trajectories(q_net, env, state.env_params, sample_key, config.batch_size, True,
                                          config.epsilon, config.temperature * tau)
    transitions, valid = soft_rl.trajectory_transitions(env, state.env_params, trajectories.states,
                                                        trajectories.actions, trajectories.length)
    per = per_add(state.per, transitions, valid)
    progress = jnp.minimum(state.iteration.astype(jnp.float32) / config.per_beta_iterations, 1.0)
    beta = config.per_beta + progress * (config.per_beta_final - config.per_beta)
    batch, indices, weights = per_sample(per, replay_key, config.replay_batch_size, config.per_alpha, beta)

    target_net = eqx.combine(state.target, policy_static)
    next_q, next_mask, _ = _q_values(target_net, env, batch.next_state)
    target = soft_rl.soft_dqn_target(batch.reward, next_q, next_mask, batch.done, tau)
    if config.loss == "mdqn":
        l0 = config.munchausen_l0 if config.munchausen_l0 is not None else MUNCHAUSEN_L0.get(config.env, -100.0)
        target_q, target_mask, _ = _q_values(target_net, env, batch.state)
        target = target + soft_rl.munchausen_bonus(target_q, target_mask, batch.action, tau,
                                                   config.munchausen_alpha, l0)
    weight = weights * jnp.where(batch.done, config.leaf_coefficient, 1.0)

    def td_loss(params):
        q, _, _ = _q_values(eqx.combine(params, policy_static), env, batch.state)
        td = jnp.take_along_axis(q, batch.action[:, None], axis=-1)[:, 0] - target
        return jnp.mean(weight * soft_rl.huber(td)), td

    (loss, td), grads = jax.value_and_grad(td_loss, has_aux=True)(state.policy)
    policy_opt, _ = _optimizers(config)
    updates, policy_opt_state = policy_opt.update(grads, state.opt_state[0])
    policy = optax.apply_updates(state.policy, updates)
    per = per_update(per, indices, jnp.abs(td))
    refresh = (state.iteration + 1) % config.target_every == 0
    polyak = jnp.where(refresh, config.target_polyak, 0.0)
    target_params = jax.tree.map(lambda t, p: t + polyak * (p - t), state.target, policy)

    modes_hit = _modes_hit(env, state.env_params, state.modes_hit, trajectories.final_states)
    first = jax.tree.map(lambda x: x[:1, 0], trajectories.states)
    _, _, log_v0 = _q_values(q_net, env, first)
    new_state = state._replace(policy=policy, opt_state=(policy_opt_state, state.opt_state[1]),
                               modes_hit=modes_hit, key=key, iteration=state.iteration + 1, target=target_params,
                               per=per)
    metrics = {
        "loss": loss, "log_z": log_v0[0], "log_reward_mean": jnp.mean(trajectories.log_reward),
        "trajectory_length_mean": jnp.mean(trajectories.length.astype(jnp.float32)),
        "modes_found": modes_found(modes_hit).astype(jnp.float32),
    }
    return new_state, metrics


def update(config: GFlowNetConfig, state: GFlowNetState) -> tuple[GFlowNetState, dict]:
    """One iteration: sample (on-policy, plus replayed or auxiliary trajectories), one Adam step per model."""
    if config.loss in SOFT_RL:
        return _soft_rl_update(config, state)
    env, policy_static = _static(config)
    uniform_pb = config.backward_policy == "uniform"
    key, sample_key, other_key = jax.random.split(state.key, 3)
    policy = eqx.combine(state.policy, policy_static)
    num_other = config.other_batch_size()
    trajectories, terms = sample_trajectories(
        policy, env, state.env_params, sample_key, config.batch_size - num_other, uniform_pb, config.epsilon,
        config.temperature)
    sampled_finals = trajectories.final_states
    metrics, new_fields = {}, {}

    if config.explore == "replay":
        replay = replay_add(state.replay, trajectories)
        replayed = replay_sample(replay, other_key, num_other)
        replayed, replayed_terms = rescore_trajectories(policy, env, replayed, uniform_pb)
        trajectories, terms = _concat(trajectories, replayed), _concat(terms, replayed_terms)
        new_fields["replay"] = replay
    elif config.explore in AUXILIARY:
        aux = state.aux
        aux_trajectories, aux_terms = sample_trajectories(
            eqx.combine(aux.policy, policy_static), env, state.env_params, other_key, config.batch_size,
            uniform_pb, 0.0, 1.0)
        # The main model's loss on the auxiliary trajectories, from its own re-computed log-probabilities.
        main_view, main_terms = rescore_trajectories(policy, env, aux_trajectories, uniform_pb)
        main_loss = batch_loss(config, main_terms, aux_trajectories.log_reward, aux_trajectories.length,
                               state.log_z)
        log_reward = aux_trajectories.log_reward
        if config.explore == "lggfn":
            aux_log_reward = lggfn.lggfn_log_reward(main_loss, log_reward, config.aux_lambda)
        elif config.explore == "teacher":
            aux_log_reward = lggfn.teacher_log_reward(main_loss, log_reward, config.aux_lambda)
        else:
            final_obs = jax.vmap(env.obs)(aux_trajectories.final_states)
            novelty = lggfn.rnd_novelty(state.rnd, final_obs)
            aux_log_reward = lggfn.sagfn_log_reward(novelty, log_reward, config.sagfn_beta_e,
                                                    config.sagfn_beta_i, config.sagfn_beta_sn)
            new_fields["rnd"] = lggfn.rnd_update(state.rnd, final_obs, config.rnd_lr)
        # The auxiliary model trains with trajectory balance on its own samples, as in the reference code.
        new_aux, aux_loss = _train_step(config, "tb", tuple(aux), aux_trajectories, aux_terms, aux_log_reward)
        new_fields["aux"] = AuxiliaryModel(*new_aux)
        take = lambda tree: jax.tree.map(lambda x: x[:num_other], tree)
        trajectories, terms = _concat(trajectories, take(main_view)), _concat(terms, take(main_terms))
        sampled_finals = _concat(sampled_finals, aux_trajectories.final_states)
        metrics.update(aux_loss=aux_loss, aux_log_reward_mean=jnp.mean(aux_log_reward),
                       main_loss_on_aux_mean=jnp.mean(main_loss))

    (new_policy, new_log_z, new_opt_state), loss = _train_step(
        config, config.loss, (state.policy, state.log_z, state.opt_state), trajectories, terms,
        trajectories.log_reward)
    modes_hit = _modes_hit(env, state.env_params, state.modes_hit, sampled_finals)
    # DB and SubTB have no log Z parameter: their estimate is the learned flow of the initial state.
    log_z = state.log_z if config.loss == "tb" else jnp.mean(terms.log_flow[:, 0])
    new_state = state._replace(
        policy=new_policy, log_z=new_log_z, opt_state=new_opt_state, modes_hit=modes_hit, key=key,
        iteration=state.iteration + 1, **new_fields)
    metrics = {
        "loss": loss, "log_z": log_z, "log_reward_mean": jnp.mean(trajectories.log_reward),
        "trajectory_length_mean": jnp.mean(trajectories.length.astype(jnp.float32)),
        "modes_found": modes_found(modes_hit).astype(jnp.float32), **metrics,
    }
    return new_state, metrics


def policy_of(config: GFlowNetConfig, state: GFlowNetState):
    """The forward policy of a (single-seed) state: the policy network, or softmax(Q / tau) for soft RL."""
    policy = eqx.combine(state.policy, _static(config)[1])
    tau = soft_rl_tau(config) if config.loss in SOFT_RL else 1.0
    return TemperedPolicy(policy, tau) if tau != 1.0 else policy


def terminal_distributions(config: GFlowNetConfig, state: GFlowNetState) -> tuple[np.ndarray, np.ndarray]:
    """(learned, target): the exact terminal distribution of P_F and R / Z, for an enumerable environment."""
    env = _static(config)[0]
    learned = gfn_metrics.exact_terminal_distribution(policy_of(config, state), env, state.env_params)
    return learned, gfn_metrics.target_distribution(env, state.env_params)


def evaluate(config: GFlowNetConfig, state: GFlowNetState, key: jax.Array) -> dict[str, float]:
    """Exact distribution metrics where the environment is enumerable (plus expected SHD and edge AUC for
    structure learning); Spearman on the bit-sequence test set."""
    env = _static(config)[0]
    if is_enumerable(env) and env.num_states <= MAX_ENUMERABLE_STATES:
        learned, target = terminal_distributions(config, state)
        results = gfn_metrics.distribution_metrics(learned, target)
        if config.env == "structure":
            from fluxrl.envs.gflownet.structure_metrics import graph_metrics

            results.update(graph_metrics(env, learned))
        return results
    if config.env == "bitseq":
        from fluxrl.gflownet.bitseq_eval import test_correlation

        return {"spearman": test_correlation(config, env, policy_of(config, state), state.env_params, key)}
    return {}


ALGORITHM = Algorithm(name="gflownet", config_type=GFlowNetConfig, init=init, update=update, evaluate=evaluate,
                      progress_metrics=("loss", "tv", "modes_found"), counters=("modes_found",))
