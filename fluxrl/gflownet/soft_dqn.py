"""GFlowNets trained as entropy-regularised RL: soft DQN and Munchausen DQN (Tiapkin et al. 2024).

The policy network is a Q-network, plain (Q = the forward logits, the official hypergrid and bit-sequence code)
or dueling (`soft_rl.dueling_q`, the molecule setting), whose policy is softmax(Q / tau). One update samples
`batch_size` trajectories with that policy, stores their transitions in a prioritised replay buffer (Schaul et
al. 2016) at the largest priority seen or at their own TD priority, and, once `learning_starts` iterations have
collected, takes one Adam step on the (optionally importance-weighted) Huber TD error of a replayed batch against
a target network, and moves the target network towards the online one.

Soft DQN and M-DQN are one algorithm: `munchausen_alpha = 0` is soft DQN (tau = 1, no Munchausen term), any
alpha in (0, 1) is M-DQN with tau = 1 / (1 - alpha). The backward policy is always the uniform one: it defines
the soft-RL reward (see `soft_rl.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import optax

from fluxrl.core.config import check_choice, check_range
from fluxrl.core.runner import Algorithm
from fluxrl.envs.gflownet.configs import BitSequenceConfig, EnvConfig, HypergridConfig
from fluxrl.gflownet import soft_rl
from fluxrl.gflownet.empirical import (EmpiricalWindow, check_window, empirical_metrics, window_add_states,
                                      window_init)
from fluxrl.gflownet.evaluation import evaluate_in_jit, evaluate_policy, make_run_data
from fluxrl.gflownet.model import GFlowNetData, optimizer, sampling_metrics
from fluxrl.gflownet.modes import add_modes, empty_mode_set
from fluxrl.gflownet.networks import NetworkConfig, init_policy_params, policy_of_params, resolve_network
from fluxrl.gflownet.plots import save_distribution_figure
from fluxrl.gflownet.policy import TemperedPolicy, policy_input
from fluxrl.gflownet.replay import PrioritizedReplay, per_add, per_init, per_sample, per_update
from fluxrl.gflownet.sampler import sample_trajectories

# Munchausen clip l0 on bit sequences (Tiapkin et al. 2024); every other environment uses DEFAULT_L0.
BITSEQ_L0 = -25.0
DEFAULT_L0 = -100.0
Q_HEADS = ("dueling", "plain")
PER_INSERTS = ("max", "td")
PER_PRIORITIES = ("abs", "huber")


@dataclass(frozen=True)
class SoftDQNConfig:
    """A GFlowNet trained by soft DQN (munchausen_alpha = 0) or Munchausen DQN (munchausen_alpha > 0)."""

    # Swept, these become one vmapped axis of a compiled program (`fluxrl.sweep.traced`): each enters the update
    # only through arithmetic on arrays. munchausen_alpha does not (it sets the tempered policy's static tau, and
    # `if munchausen_alpha > 0` skips a pass), nor l0 (it may be None) or weight_decay (an optimiser chosen by it).
    TRACED_FIELDS: ClassVar[tuple[str, ...]] = ("lr", "epsilon", "temperature", "leaf_coefficient", "target_polyak",
                                                "per_alpha", "per_beta", "per_beta_final")

    env: EnvConfig = field(default_factory=HypergridConfig)
    """The environment and its reward."""
    network: NetworkConfig | None = None
    """Q-network; None: the environment's default (bit sequences: transformer; others: MLP)."""
    q_head: str = "dueling"
    """Q-network head: dueling (Q = V + log_softmax(A), the molecule setting) or plain (Q = the forward logits,
    the official hypergrid and bit-sequence code)."""
    batch_size: int = 16
    """Trajectories sampled per iteration."""
    lr: float = 1e-3
    """Adam learning rate of the Q-network (> 0)."""
    weight_decay: float = 0.0
    """L2 coefficient added to the gradient before Adam (Tiapkin et al.'s bit sequences: 1e-5; >= 0)."""
    epsilon: float = 0.0
    """Sampling: probability mass mixed in uniformly over valid actions, in [0, 1]."""
    temperature: float = 1.0
    """Sampling: softmax(Q / (tau * temperature)) (> 0)."""
    munchausen_alpha: float = 0.15
    """Weight alpha of the Munchausen term, in [0, 1); 0 is soft DQN. The temperature is tau = 1 / (1 - alpha)."""
    l0: float | None = None
    """Lower clip of tau * log pi in the Munchausen term (< 0); None: -25 on bit sequences, -100 elsewhere."""
    leaf_coefficient: float = 1.0
    """Weight of the TD errors of transitions into a terminal object (the paper uses 2-5 on bit sequences)."""
    target_polyak: float = 0.25
    """Target network update theta_target += polyak * (theta - theta_target), in (0, 1]; 1 is a hard copy."""
    target_every: int = 1
    """Iterations between target network updates."""
    replay_batch_size: int = 256
    """Transitions replayed per iteration."""
    per_capacity: int = 100_000
    """Transitions kept in the prioritised replay buffer."""
    per_alpha: float = 0.5
    """Priority exponent alpha (0 = uniform replay)."""
    per_beta: float = 0.0
    """Importance-sampling exponent beta at the start, annealed linearly to per_beta_final."""
    per_beta_final: float = 1.0
    """Importance-sampling exponent beta after per_beta_iterations."""
    per_beta_iterations: int = 10_000
    """Iterations over which beta is annealed."""
    per_importance_weights: bool = True
    """Weight each replayed TD error by its importance weight (the official hypergrid code does not)."""
    per_insert: str = "max"
    """Priority of new transitions: max (the largest seen, so each is replayed soon) or td (their own priority
    under the current networks, the official hypergrid code)."""
    per_priority: str = "abs"
    """Priority of a transition: abs (|TD error|) or huber (its Huber TD loss with the leaf weight, official)."""
    learning_starts: int = 0
    """Iterations that only collect transitions before the first gradient step and target update (>= 0)."""
    empirical_window: int = 0
    """Terminal objects kept for `empirical_l1` (the last sampled ones; 0: off; Tiapkin et al.: 200,000)."""

    def __post_init__(self):
        for name in ("batch_size", "target_every", "replay_batch_size", "per_capacity", "per_beta_iterations"):
            check_range(name, getattr(self, name), 1)
        check_choice("q_head", self.q_head, Q_HEADS)
        check_choice("per_insert", self.per_insert, PER_INSERTS)
        check_choice("per_priority", self.per_priority, PER_PRIORITIES)
        check_range("learning_starts", self.learning_starts, 0)
        check_window(self.env, self.empirical_window)
        check_range("lr", self.lr, 0.0, low_open=True)
        check_range("weight_decay", self.weight_decay, 0.0)
        check_range("epsilon", self.epsilon, 0.0, 1.0)
        check_range("temperature", self.temperature, 0.0, low_open=True)
        check_range("munchausen_alpha", self.munchausen_alpha, 0.0, 1.0, high_open=True)
        if self.l0 is not None:
            check_range("l0", self.l0, high=0.0, high_open=True)
        check_range("leaf_coefficient", self.leaf_coefficient, 0.0, low_open=True)
        check_range("target_polyak", self.target_polyak, 0.0, 1.0, low_open=True)
        check_range("per_alpha", self.per_alpha, 0.0)
        check_range("per_beta", self.per_beta, 0.0, 1.0)
        check_range("per_beta_final", self.per_beta_final, 0.0, 1.0)
        resolve_network(self.env, self.network)


class SoftDQNState(NamedTuple):
    """Everything a run needs between iterations; a pytree of arrays."""

    q_params: Any  # the online Q-network's arrays
    target_params: Any  # the target Q-network's arrays
    opt_state: Any
    replay: PrioritizedReplay  # transitions of past trajectories
    modes_hit: jax.Array  # packed bit set of the modes some sampled object has hit so far
    key: jax.Array
    iteration: jax.Array
    sampled: EmpiricalWindow  # state indices of the last sampled terminal objects (empty when the window is off)


def tau(config: SoftDQNConfig) -> float:
    """Temperature of the policy softmax(Q / tau): 1 / (1 - alpha), so the entropy coefficient (1 - alpha) tau
    is 1 (soft DQN: tau = 1)."""
    return 1.0 / (1.0 - config.munchausen_alpha)


def munchausen_l0(config: SoftDQNConfig) -> float:
    """The Munchausen clip l0: the config's, or the environment's default."""
    if config.l0 is not None:
        return config.l0
    return BITSEQ_L0 if isinstance(config.env, BitSequenceConfig) else DEFAULT_L0


def per_beta_at(config: SoftDQNConfig, iteration: jax.Array) -> jax.Array:
    """The importance-sampling exponent at an iteration: per_beta annealed linearly to per_beta_final."""
    progress = jnp.minimum(iteration.astype(jnp.float32) / config.per_beta_iterations, 1.0)
    return config.per_beta + progress * (config.per_beta_final - config.per_beta)


def _network(config: SoftDQNConfig) -> tuple[Any, NetworkConfig]:
    return config.env.build()[0], resolve_network(config.env, config.network)


def q_values(config: SoftDQNConfig, net, env, states) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(Q [N, A], valid-action mask [N, A], soft value V [N]) of a batch of states under the Q-network."""
    forward_logits, _, log_flow = jax.vmap(lambda s: net(policy_input(net, env, s)))(states)
    mask = jax.vmap(env.forward_mask)(states)
    if config.q_head == "dueling":
        return soft_rl.dueling_q(forward_logits, log_flow, mask), mask, log_flow
    q = jnp.where(mask, forward_logits, soft_rl.MASKED_LOGIT)
    return q, mask, soft_rl.soft_value(q, mask, tau(config))


def td_target(config: SoftDQNConfig, target_net, env, batch: soft_rl.Transition) -> jax.Array:
    """The soft DQN target of each transition under the target network, plus the Munchausen term if alpha > 0."""
    temperature = tau(config)
    next_q, next_mask, _ = q_values(config, target_net, env, batch.next_state)
    target = soft_rl.soft_dqn_target(batch.reward, next_q, next_mask, batch.done, temperature)
    if config.munchausen_alpha > 0:  # soft DQN skips the extra pass: its Munchausen term is 0
        target_q, target_mask, _ = q_values(config, target_net, env, batch.state)
        target = target + soft_rl.munchausen_bonus(target_q, target_mask, batch.action, temperature,
                                                   config.munchausen_alpha, munchausen_l0(config))
    return target


def taken_q(config: SoftDQNConfig, net, env, batch: soft_rl.Transition) -> jax.Array:
    """Q(s, a) of each transition's state and action."""
    q, _, _ = q_values(config, net, env, batch.state)
    return jnp.take_along_axis(q, batch.action[:, None], axis=-1)[:, 0]


def priority(config: SoftDQNConfig, td: jax.Array, done: jax.Array) -> jax.Array:
    """A transition's replay priority from its TD error: |td|, or its leaf-weighted Huber loss."""
    if config.per_priority == "abs":
        return jnp.abs(td)
    return soft_rl.huber(td) * jnp.where(done, config.leaf_coefficient, 1.0)


def make_data(config: SoftDQNConfig) -> GFlowNetData:
    """The environment's reward parameters and exact-evaluation tables, shared by every seed."""
    return make_run_data(config.env)


def init(config: SoftDQNConfig, data: GFlowNetData, key: jax.Array) -> SoftDQNState:
    """A fresh run: a random Q-network, its target a copy, an empty replay buffer."""
    env, network = _network(config)
    q_key, key = jax.random.split(key)
    q_params = init_policy_params(network, env, q_key)
    first = env.reset(data.env_params, key)
    example = soft_rl.Transition(first, jnp.int32(0), jnp.float32(0.0), first, jnp.array(False))
    return SoftDQNState(q_params, q_params, optimizer(config.lr, config.weight_decay).init(q_params),
                        per_init(example, config.per_capacity), empty_mode_set(env), key, jnp.int32(0),
                        window_init(config.empirical_window))


def update(config: SoftDQNConfig, data: GFlowNetData, state: SoftDQNState) -> tuple[SoftDQNState, dict]:
    """One iteration: sample trajectories with softmax(Q / tau), store their transitions; after
    `learning_starts` iterations, one Adam step on a prioritised replay batch and a target network update."""
    env, network = _network(config)
    key, sample_key, replay_key = jax.random.split(state.key, 3)
    q_net = policy_of_params(network, env, state.q_params)
    target_net = policy_of_params(network, env, state.target_params)
    trajectories, _ = sample_trajectories(q_net, env, data.env_params, sample_key, config.batch_size, True,
                                          config.epsilon, config.temperature * tau(config))
    transitions, valid = soft_rl.trajectory_transitions(env, data.env_params, trajectories.states,
                                                        trajectories.actions, trajectories.length)
    new_priorities = None
    if config.per_insert == "td":
        new_td = taken_q(config, q_net, env, transitions) - td_target(config, target_net, env, transitions)
        new_priorities = priority(config, new_td, transitions.done)
    replay = per_add(state.replay, transitions, valid, new_priorities)
    batch, indices, weights = per_sample(replay, replay_key, config.replay_batch_size, config.per_alpha,
                                         per_beta_at(config, state.iteration))
    if not config.per_importance_weights:
        weights = jnp.ones_like(weights)
    target = td_target(config, target_net, env, batch)
    weight = weights * jnp.where(batch.done, config.leaf_coefficient, 1.0)

    def td_loss(params):
        td = taken_q(config, policy_of_params(network, env, params), env, batch) - target
        return jnp.mean(weight * soft_rl.huber(td)), td

    (loss, td), grads = jax.value_and_grad(td_loss, has_aux=True)(state.q_params)
    updates, opt_state = optimizer(config.lr, config.weight_decay).update(grads, state.opt_state, state.q_params)
    # Before learning_starts nothing but the buffer changes: the step is computed and dropped (masks over branches).
    learning = state.iteration >= config.learning_starts
    keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(learning, n, o), new, old)
    q_params = keep(optax.apply_updates(state.q_params, updates), state.q_params)
    opt_state = keep(opt_state, state.opt_state)
    # Only the priorities change here; selecting the whole buffer would copy every stored transition.
    updated = per_update(replay, indices, priority(config, td, batch.done))
    replay = replay._replace(priorities=keep(updated.priorities, replay.priorities),
                             max_priority=keep(updated.max_priority, replay.max_priority))
    refresh = learning & ((state.iteration + 1) % config.target_every == 0)
    polyak = jnp.where(refresh, config.target_polyak, 0.0)
    target_params = jax.tree.map(lambda t, p: t + polyak * (p - t), state.target_params, q_params)

    modes_hit = add_modes(env, data.env_params, state.modes_hit, trajectories.final_states)
    sampled = window_add_states(state.sampled, env, trajectories.final_states)
    # log Z estimate: the soft value V(s0) of the network that sampled.
    _, _, log_v0 = q_values(config, q_net, env, jax.tree.map(lambda x: x[:1, 0], trajectories.states))
    new_state = SoftDQNState(q_params, target_params, opt_state, replay, modes_hit, key, state.iteration + 1,
                             sampled)
    return new_state, sampling_metrics(jnp.where(learning, loss, 0.0), log_v0[0], trajectories, modes_hit)


def policy_of(config: SoftDQNConfig, state: SoftDQNState):
    """The forward policy of a (single-seed) state: softmax(Q / tau)."""
    env, network = _network(config)
    q_net = policy_of_params(network, env, state.q_params)
    return TemperedPolicy(q_net, tau(config)) if tau(config) != 1.0 else q_net


def evaluate(config: SoftDQNConfig, data: GFlowNetData, state: SoftDQNState, key: jax.Array) -> dict:
    """Exact distribution metrics inside jit, where the environment is enumerable (see `evaluation.py`), and
    empirical_l1 of the last sampled objects when `empirical_window` > 0 (see `empirical.py`)."""
    return {**evaluate_in_jit(config.env, policy_of(config, state), data),
            **empirical_metrics(config.env.build()[0], state.sampled, data.exact)}


def evaluate_host(config: SoftDQNConfig, data: GFlowNetData, state: SoftDQNState, key: jax.Array) -> dict:
    """Expected SHD and edge AUC on structure learning, test-set Spearman on bit sequences."""
    return evaluate_policy(config.env, policy_of(config, state), data, key)


def on_finish(config: SoftDQNConfig, data: GFlowNetData, state: SoftDQNState, out_dir: Path) -> None:
    """distribution.png for a 2-D hypergrid."""
    method = "M-DQN" if config.munchausen_alpha > 0 else "soft DQN"
    save_distribution_figure(config.env, policy_of(config, state), data.env_params, out_dir, method)


ALGORITHM = Algorithm(
    name="gflownet-soft-dqn", config_type=SoftDQNConfig, init=init, update=update, make_data=make_data,
    evaluate=evaluate, evaluate_host=evaluate_host, progress_metrics=("loss", "tv", "modes_found"),
    counters=("modes_found",),
    throughput_unit="trajectories", work_per_iteration=lambda config: config.batch_size,
    artifacts=("distribution.png",), on_finish=on_finish)
