"""Replay of past trajectories: part of the main model's batch is drawn from a buffer of its own earlier samples.

Each iteration the fresh on-policy trajectories enter a ring buffer (`replay.py`), and `num_other` stored ones,
drawn uniformly, join the batch, re-scored under the current parameters: the log-probabilities a loss uses are
always the model's own (the stored ones are stale).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax

from fluxrl.core.config import ConfigError, check_range
from fluxrl.gflownet.exploration import Explored
from fluxrl.gflownet.model import Learner, Model
from fluxrl.gflownet.networks import init_policy_params, policy_of_params
from fluxrl.gflownet.replay import ReplayBuffer, replay_add, replay_init, replay_sample
from fluxrl.gflownet.sampler import Trajectories, rescore_trajectories, sample_trajectories


@dataclass(frozen=True)
class ReplayConfig:
    """Replay of the main model's past trajectories."""

    aux_fraction: float = 0.5
    """Fraction of the main model's batch drawn from the buffer, in (0, 1)."""
    capacity: int = 1000
    """Trajectories kept in the buffer (the oldest are overwritten); at least the batch size."""

    def __post_init__(self):
        check_range("aux_fraction", self.aux_fraction, 0.0, 1.0, low_open=True, high_open=True)
        check_range("capacity", self.capacity, 1)


def check_capacity(config: ReplayConfig, batch_size: int) -> None:
    """Raise ConfigError when the buffer cannot hold one batch (its writes would overlap in one iteration)."""
    if config.capacity < batch_size:
        raise ConfigError(f"replay capacity must be >= batch_size = {batch_size}, got {config.capacity}.")


def init(config: ReplayConfig, learner: Learner, key: jax.Array) -> ReplayBuffer:
    """An empty buffer shaped for this run's trajectories."""
    def one_trajectory(key):  # shapes only: nothing is sampled
        policy = policy_of_params(learner.network, learner.env, init_policy_params(learner.network, learner.env, key))
        return sample_trajectories(policy, learner.env, learner.env_params, key, 1, learner.uniform_pb)[0]

    return replay_init(jax.eval_shape(one_trajectory, key), config.capacity)


def explore(config: ReplayConfig, learner: Learner, buffer: ReplayBuffer, main: Model, fresh: Trajectories,
            key: jax.Array, num_other: int) -> Explored:
    """Store the fresh trajectories, then draw `num_other` stored ones re-scored by the main model."""
    del config
    buffer = replay_add(buffer, fresh)
    replayed = replay_sample(buffer, key, num_other)
    policy = policy_of_params(learner.network, learner.env, main.policy)
    replayed, terms = rescore_trajectories(policy, learner.env, replayed, learner.uniform_pb)
    # Nothing new was sampled: the fresh trajectories' modes are counted by the caller.
    return Explored(replayed, terms, None, buffer, {})
