"""GFlowNets trained with a balance loss: trajectory balance, detailed balance or sub-trajectory balance.

One update samples trajectories with the policy (softmax(logits / temperature), mixed with epsilon of uniform),
lets the exploration strategy, if any, supply a share of the batch (replayed or auxiliary trajectories, see
`exploration.py`), and takes one Adam step of the policy and log Z on the mean loss over the mixed batch,
with every term computed by the model being trained (see `model.train_step`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from fluxrl.core.config import ConfigError, check_choice, check_range, refuse_unused
from fluxrl.core.runner import Algorithm
from fluxrl.envs.gflownet.configs import EnvConfig, HypergridConfig
from fluxrl.gflownet import lggfn, sagfn, teacher, trajectory_replay
from fluxrl.gflownet.empirical import EmpiricalWindow, check_window, empirical_metrics, window_add_states, window_init
from fluxrl.gflownet.evaluation import evaluate_in_jit, evaluate_policy, make_run_data
from fluxrl.gflownet.exploration import check_batch_mix, other_batch_size
from fluxrl.gflownet.losses import BALANCE_LOSSES, balance_loss
from fluxrl.gflownet.model import (GFlowNetData, Learner, Model, concat, init_model, sampling_metrics, total_log_z,
                                   train_step)
from fluxrl.gflownet.modes import add_modes, empty_mode_set
from fluxrl.gflownet.networks import NetworkConfig, policy_of_params, resolve_network
from fluxrl.gflownet.plots import save_distribution_figure
from fluxrl.gflownet.sampler import sample_trajectories

BACKWARD_POLICIES = ("learned", "uniform")
# Each exploration strategy's config type and the module holding its `init` and `explore`.
STRATEGIES = {trajectory_replay.ReplayConfig: trajectory_replay, lggfn.LGGFNConfig: lggfn,
              teacher.TeacherConfig: teacher, sagfn.SAGFNConfig: sagfn}
ExplorationConfig = trajectory_replay.ReplayConfig | lggfn.LGGFNConfig | teacher.TeacherConfig | sagfn.SAGFNConfig
AUXILIARY = (lggfn.LGGFNConfig, teacher.TeacherConfig, sagfn.SAGFNConfig)


@dataclass(frozen=True)
class BalanceConfig:
    """A GFlowNet trained with TB, DB or SubTB, optionally with an exploration strategy."""

    # Swept, these become one vmapped axis of a compiled program (`fluxrl.sweep.traced`): each enters the update
    # only through arithmetic on arrays. weight_decay does not (the optimiser chain is picked by
    # `if weight_decay == 0.0`).
    TRACED_FIELDS: ClassVar[tuple[str, ...]] = ("lr", "log_z_lr", "subtb_lambda", "epsilon", "temperature")

    env: EnvConfig = field(default_factory=HypergridConfig)
    """The environment and its reward."""
    network: NetworkConfig | None = None
    """Policy network; None: the environment's default (bit sequences: transformer; others: MLP)."""
    loss: str = "tb"
    """Training loss: tb (trajectory balance), db (detailed balance) or subtb (sub-trajectory balance)."""
    subtb_lambda: float = 0.9
    """SubTB: weight lambda^(j-i) of a sub-trajectory of j-i transitions (> 0)."""
    backward_policy: str = "learned"
    """Backward policy P_B: learned or uniform."""
    batch_size: int = 16
    """Trajectories the main model trains on per iteration (fresh plus exploration's share)."""
    lr: float = 1e-3
    """Adam learning rate of the policy network (> 0)."""
    log_z_lr: float = 0.1
    """Adam learning rate of log Z (TB only; >= 0)."""
    epsilon: float = 0.0
    """Sampling: probability mass mixed in uniformly over valid actions, in [0, 1]."""
    temperature: float = 1.0
    """Sampling: softmax(logits / temperature) (> 0)."""
    explore: ExplorationConfig | None = None
    """Exploration strategy supplying part of the batch: replay, LGGFN, teacher, SA-GFN; None: on-policy only."""
    grad_chunk_rows: int = 256
    """Visited states per chunk of the gradient pass (memory vs. speed; no effect on results)."""
    log_z_size: int = 1
    """Elements of the log Z parameter, summed in the loss (Tiapkin et al.'s bit sequences: 64, so a log Z step is
    64 element steps); TB only, without exploration."""
    weight_decay: float = 0.0
    """L2 coefficient added to every gradient before Adam (Tiapkin et al.'s bit sequences: 1e-5; >= 0)."""
    empirical_window: int = 0
    """Terminal objects kept for `empirical_l1` (the main policy's last fresh samples; 0: off; Tiapkin et al.:
    200,000)."""

    def __post_init__(self):
        check_choice("loss", self.loss, BALANCE_LOSSES)
        check_choice("backward_policy", self.backward_policy, BACKWARD_POLICIES)
        for name in ("batch_size", "grad_chunk_rows"):
            check_range(name, getattr(self, name), 1)
        check_range("lr", self.lr, 0.0, low_open=True)
        check_range("log_z_lr", self.log_z_lr, 0.0)
        check_range("subtb_lambda", self.subtb_lambda, 0.0, low_open=True)
        check_range("epsilon", self.epsilon, 0.0, 1.0)
        check_range("temperature", self.temperature, 0.0, low_open=True)
        resolve_network(self.env, self.network)
        check_window(self.env, self.empirical_window)
        check_range("log_z_size", self.log_z_size, 1)
        check_range("weight_decay", self.weight_decay, 0.0)
        if self.loss != "subtb":
            refuse_unused(self, ("subtb_lambda",), f"with loss={self.loss} (only SubTB weighs sub-trajectories)")
        if self.log_z_size > 1 and (self.loss != "tb" or self.explore is not None):
            raise ConfigError("log_z_size must be 1 unless loss is tb without exploration (only there is log Z "
                              "the main model's own parameter).")
        if self.explore is not None:
            if type(self.explore) not in STRATEGIES:
                raise ConfigError(f"explore must be a ReplayConfig, LGGFNConfig, TeacherConfig, SAGFNConfig or "
                                  f"None, got {type(self.explore).__name__}.")
            check_batch_mix(self.explore.aux_fraction, self.batch_size)
            if isinstance(self.explore, trajectory_replay.ReplayConfig):
                trajectory_replay.check_capacity(self.explore, self.batch_size)


class BalanceState(NamedTuple):
    """Everything a run needs between iterations; a pytree of arrays."""

    model: Model  # policy network, log Z, Adam states
    modes_hit: jax.Array  # packed bit set of the modes some sampled object has hit so far
    key: jax.Array
    iteration: jax.Array
    exploration: Any = ()  # the strategy's state: replay buffer, auxiliary model (and RND)
    sampled: EmpiricalWindow | None = None  # state indices of the main policy's last fresh terminal objects


def num_other(config: BalanceConfig) -> int:
    """Trajectories of the batch supplied by the exploration strategy."""
    return 0 if config.explore is None else other_batch_size(config.explore.aux_fraction, config.batch_size)


def trajectories_per_iteration(config: BalanceConfig) -> int:
    """Trajectories sampled per iteration: the main model's fresh ones plus an auxiliary model's batch."""
    auxiliary = config.batch_size if isinstance(config.explore, AUXILIARY) else 0
    return config.batch_size - num_other(config) + auxiliary


def learner(config: BalanceConfig, data: GFlowNetData) -> Learner:
    """How the main (and any auxiliary) model trains in this run."""
    def loss(terms, log_reward, length, log_z):
        return balance_loss(config.loss, terms, log_reward, length, log_z, config.subtb_lambda)

    return Learner(env=config.env.build()[0], env_params=data.env_params,
                   network=resolve_network(config.env, config.network),
                   uniform_pb=config.backward_policy == "uniform", batch_size=config.batch_size,
                   grad_chunk_rows=config.grad_chunk_rows, lr=config.lr, log_z_lr=config.log_z_lr, loss=loss,
                   log_z_size=config.log_z_size, weight_decay=config.weight_decay)


def make_data(config: BalanceConfig) -> GFlowNetData:
    """The environment's reward parameters and exact-evaluation tables, shared by every seed."""
    return make_run_data(config.env)


def init(config: BalanceConfig, data: GFlowNetData, key: jax.Array) -> BalanceState:
    """A fresh run: a random policy, log Z = 0, empty Adam states, the strategy's fresh state."""
    setup = learner(config, data)
    model_key, explore_key, key = jax.random.split(key, 3)
    exploration = () if config.explore is None else STRATEGIES[type(config.explore)].init(
        config.explore, setup, explore_key)
    return BalanceState(init_model(setup, model_key), empty_mode_set(setup.env), key, jnp.int32(0), exploration,
                        window_init(config.empirical_window))


def update(config: BalanceConfig, data: GFlowNetData, state: BalanceState) -> tuple[BalanceState, dict]:
    """One iteration: sample (plus the strategy's share of the batch), one Adam step of the main model."""
    setup = learner(config, data)
    key, sample_key, other_key = jax.random.split(state.key, 3)
    policy = policy_of_params(setup.network, setup.env, state.model.policy)
    fresh, terms = sample_trajectories(policy, setup.env, data.env_params, sample_key,
                                       config.batch_size - num_other(config), setup.uniform_pb, config.epsilon,
                                       config.temperature)
    trajectories, sampled_final_states, metrics, exploration = fresh, fresh.final_states, {}, state.exploration
    if config.explore is not None:
        explored = STRATEGIES[type(config.explore)].explore(config.explore, setup, state.exploration, state.model,
                                                            fresh, other_key, num_other(config))
        trajectories, terms = concat(fresh, explored.trajectories), concat(terms, explored.terms)
        if explored.sampled_final_states is not None:
            sampled_final_states = concat(sampled_final_states, explored.sampled_final_states)
        metrics, exploration = explored.metrics, explored.state

    def main_loss(terms, log_z):
        return setup.loss(terms, trajectories.log_reward, trajectories.length, log_z)

    model, loss = train_step(setup, state.model, main_loss, trajectories, terms)
    modes_hit = add_modes(setup.env, data.env_params, state.modes_hit, sampled_final_states)
    # DB and SubTB have no log Z parameter: their estimate is the learned flow of the initial state.
    log_z = total_log_z(state.model) if config.loss == "tb" else jnp.mean(terms.log_flow[:, 0])
    # Only the main policy's own fresh samples, as the official code's histogram of training samples.
    sampled = window_add_states(state.sampled, setup.env, fresh.final_states)
    new_state = BalanceState(model, modes_hit, key, state.iteration + 1, exploration, sampled)
    return new_state, {**sampling_metrics(loss, log_z, trajectories, modes_hit), **metrics}


def policy_of(config: BalanceConfig, state: BalanceState):
    """The forward policy network of a (single-seed) state."""
    env = config.env.build()[0]
    return policy_of_params(resolve_network(config.env, config.network), env, state.model.policy)


def evaluate(config: BalanceConfig, data: GFlowNetData, state: BalanceState, key: jax.Array) -> dict:
    """Exact distribution metrics inside jit, where the environment is enumerable (see `evaluation.py`), and
    empirical_l1 of the last sampled objects when `empirical_window` > 0 (see `empirical.py`)."""
    return {**evaluate_in_jit(config.env, policy_of(config, state), data),
            **empirical_metrics(config.env.build()[0], state.sampled, data.exact)}


def evaluate_host(config: BalanceConfig, data: GFlowNetData, state: BalanceState, key: jax.Array) -> dict:
    """Expected SHD and edge AUC on structure learning, test-set Spearman on bit sequences."""
    return evaluate_policy(config.env, policy_of(config, state), data, key)


def on_finish(config: BalanceConfig, data: GFlowNetData, state: BalanceState, out_dir: Path) -> None:
    """distribution.png for a 2-D hypergrid."""
    save_distribution_figure(config.env, policy_of(config, state), data.env_params, out_dir, config.loss.upper())


ALGORITHM = Algorithm(
    name="gflownet-balance", config_type=BalanceConfig, init=init, update=update, make_data=make_data,
    evaluate=evaluate, evaluate_host=evaluate_host, progress_metrics=("loss", "tv", "modes_found"),
    counters=("modes_found",),
    throughput_unit="trajectories", work_per_iteration=trajectories_per_iteration,
    artifacts=("distribution.png",), on_finish=on_finish)
