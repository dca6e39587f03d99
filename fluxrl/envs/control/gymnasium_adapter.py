"""Gymnasium environments behind one adapter: N episodes stepped together, the policy called once per step.

The simulator (MuJoCo, PointMaze) is not JAX, so episodes run on the host: one environment per episode, all
stepped in lock-step, the policy (typically a jitted JAX function) called on the whole [N, obs_dim] batch each
step. Rows of episodes that have ended keep their last observation, so the batch shape never changes and the
policy compiles once. Episode i is reset with seed + i, so returns are a function of (policy, seed).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def run_episodes(envs: list, policy: Callable[[np.ndarray], np.ndarray], seed: int) -> np.ndarray:
    """Undiscounted return of one episode in each of `envs` (reset with seed, seed + 1, ...), stepped together
    with `policy` mapping an [N, obs_dim] batch of observations to an [N, action_dim] batch of actions."""
    observations = np.stack([np.asarray(env.reset(seed=seed + i)[0], np.float32) for i, env in enumerate(envs)])
    returns = np.zeros(len(envs), np.float64)
    running = np.ones(len(envs), bool)
    while running.any():
        actions = np.asarray(policy(observations))
        for i in np.flatnonzero(running):
            env = envs[i]
            action = np.clip(actions[i], env.action_space.low, env.action_space.high)
            observation, reward, terminated, truncated, _ = env.step(action)
            observations[i] = observation
            returns[i] += float(reward)
            running[i] = not (terminated or truncated)
    return returns


class EpisodeRunner:
    """A fixed set of environments for repeated evaluations: made on first use, reset (and reseeded) each run."""

    def __init__(self, make_env: Callable[[], Any], num_episodes: int):
        if num_episodes < 1:
            raise ValueError(f"num_episodes must be >= 1, got {num_episodes}.")
        self.make_env = make_env
        self.num_episodes = num_episodes
        self.envs: list | None = None

    def run(self, policy: Callable[[np.ndarray], np.ndarray], seed: int) -> np.ndarray:
        """Returns of `num_episodes` episodes of `policy`, episode i seeded `seed + i`."""
        if self.envs is None:
            self.envs = [self.make_env() for _ in range(self.num_episodes)]
            for env in self.envs:
                _check_bounded(env)
        return run_episodes(self.envs, policy, seed)

    def close(self) -> None:
        """Close the environments (a later run makes new ones)."""
        for env in self.envs or []:
            env.close()
        self.envs = None


def _check_bounded(env: Any) -> None:
    # An episode that never ends would hang the run: every environment needs a time limit.
    if env.spec is not None and env.spec.max_episode_steps is None and not _has_time_limit(env):
        raise ValueError(f"{env.spec.id} has no time limit; make it with max_episode_steps.")


def _has_time_limit(env: Any) -> bool:
    from gymnasium.wrappers import TimeLimit

    while env is not None:
        if isinstance(env, TimeLimit):
            return True
        env = getattr(env, "env", None)
    return False
