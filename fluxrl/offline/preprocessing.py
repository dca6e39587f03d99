"""Dataset statistics and CORL's conventions: episode returns, state normalisation, reward scaling."""

from __future__ import annotations

import numpy as np

from fluxrl.core.config import check_choice
from fluxrl.offline.datasets import Dataset
from fluxrl.offline.specs import DatasetError, DatasetSpec


def _episode_ends(dataset: Dataset) -> np.ndarray:
    """Indices one past the last row of each episode (ends at terminals | timeouts, and at the data's end)."""
    done = (np.asarray(dataset.terminals) > 0) | (np.asarray(dataset.timeouts) > 0)
    ends = np.flatnonzero(done) + 1
    count = len(done)
    if len(ends) == 0 or ends[-1] != count:
        ends = np.append(ends, count)
    return ends


def episode_returns(dataset: Dataset) -> np.ndarray:
    """Undiscounted return of every episode (split on terminals | timeouts; a trailing fragment counts too)."""
    ends = _episode_ends(dataset)
    cumulative = np.concatenate([[0.0], np.cumsum(np.asarray(dataset.rewards, dtype=np.float64))])
    starts = np.concatenate([[0], ends[:-1]])
    return cumulative[ends] - cumulative[starts]


def state_normalizer(dataset: Dataset, eps: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Observation mean and std + eps over the dataset (CORL's `compute_mean_std`)."""
    observations = np.asarray(dataset.observations, dtype=np.float64)
    mean = observations.mean(axis=0)
    std = observations.std(axis=0) + eps
    return mean.astype(np.float32), std.astype(np.float32)


def normalize_observations(observations, mean, std):
    """(observations - mean) / std, for numpy or JAX arrays (CORL's `normalize_states`)."""
    return (observations - mean) / std


def normalize_dataset(dataset: Dataset, mean: np.ndarray, std: np.ndarray) -> Dataset:
    """The dataset with observations and next_observations normalised by `mean` and `std`."""
    return dataset._replace(
        observations=normalize_observations(dataset.observations, mean, std).astype(np.float32),
        next_observations=normalize_observations(dataset.next_observations, mean, std).astype(np.float32))


def scale_rewards_by_return_range(dataset: Dataset, max_episode_steps: int) -> Dataset:
    """Rewards times max_episode_steps / (max - min episode return): CORL's `modify_reward` for locomotion.

    CORL (algorithms/offline/iql.py `return_reward_range`) splits episodes on terminals or every
    max_episode_steps rows of D4RL's q-learning data; here episodes are split on terminals | timeouts, and
    only complete episodes (not a trailing fragment) set the range, as in CORL.
    """
    returns = episode_returns(dataset)
    done = (np.asarray(dataset.terminals) > 0) | (np.asarray(dataset.timeouts) > 0)
    if not done[-1] and len(returns) > 1:
        returns = returns[:-1]
    spread = float(returns.max() - returns.min())
    if spread <= 0.0:
        raise DatasetError("every episode has the same return, so rewards cannot be scaled by the return range.")
    rewards = np.asarray(dataset.rewards, dtype=np.float64) * (max_episode_steps / spread)
    return dataset._replace(rewards=rewards.astype(np.float32))


# CNF's and PLAS's official code train on d4rl.qlearning_dataset's raw rewards (tinkoff-ai/cnf cnf/train_rl.py).
REWARD_ALGORITHMS = ("bc", "td3bc", "iql", "awac", "cnf", "plas")
# CORL's published configs (configs/offline/<algo>/<env>/<dataset>.yaml) set normalize_reward: true only
# for IQL on hopper-medium-v2 and hopper-medium-replay-v2; every other algorithm and dataset (TD3+BC, AWAC,
# BC, and all maze2d) trains on the raw rewards. CORL subtracts 1 only for antmaze, which fluxrl does not ship.
CORL_REWARD_SCALED = {"iql": ("hopper-medium", "hopper-medium-replay")}


def reward_transform(spec: DatasetSpec, dataset: Dataset, algorithm: str) -> Dataset:
    """The dataset with CORL's reward convention for `algorithm` (bc, td3bc, iql, awac; cnf and plas: raw) on
    `spec` applied.

    CORL's algorithms/offline/iql.py, awac.py and td3_bc.py define `modify_reward` (rewards scaled by
    1000 / (max - min episode return) on locomotion) but apply it only when `normalize_reward` is set, which
    their published configs do for IQL on hopper-medium and hopper-medium-replay alone; any_percent_bc.py
    never changes rewards. Everything else is returned unchanged.
    """
    check_choice("algorithm", algorithm, REWARD_ALGORITHMS)
    if spec.name in CORL_REWARD_SCALED.get(algorithm, ()):
        return scale_rewards_by_return_range(dataset, spec.max_episode_steps)
    return dataset
