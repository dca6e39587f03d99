"""The host loop of SAC against a Gymnasium simulator that is not JAX: act, store, update, evaluate.

To keep the per-step host overhead small the replay buffer is numpy, the policy is one jitted call per step, and
the updates run `updates_per_call` at a time in one jitted `lax.scan` (`sac.update_many`) after as many
environment steps (Spinning Up's SAC does the same with `update_every=50`), which keeps the ratio of one update
per step. The runner's `lax.scan` loop does not fit here: every step waits on the simulator.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import Callable, NamedTuple

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from fluxrl.core.config import check_range
from fluxrl.core.nets import MLP
from fluxrl.core.progress import Progress
from fluxrl.offline.datasets import Dataset
from fluxrl.offline.sac import Batch, SACConfig, SACState, gaussian_parameters, init, sample_action, update_many


@partial(jax.jit, static_argnums=4)
def act(actor: MLP, observation: jax.Array, key: jax.Array, call: jax.Array, deterministic: bool) -> jax.Array:
    """The policy's action in [-1, 1] for one observation: a sample (key folded with the call's number), or
    tanh(mean) when deterministic."""
    if deterministic:
        return jnp.tanh(gaussian_parameters(actor, observation)[0])
    return sample_action(actor, observation, jax.random.fold_in(key, call))[0]


class HostPolicy:
    """A SAC actor acting in a host loop: numpy observation in, numpy action (in the env's bounds) out."""

    def __init__(self, actor: MLP, action_space: gym.spaces.Box, seed: int, deterministic: bool = False):
        self.actor = actor
        self.low, self.high = action_space.low.astype(np.float32), action_space.high.astype(np.float32)
        self.key = jax.random.key(seed)
        self.deterministic = deterministic
        self.calls = 0

    def unit_action(self, observation: np.ndarray) -> np.ndarray:
        """The action in the actor's [-1, 1] scale."""
        # A counter folded into one key inside the jitted call: a fresh key per step without host-side key ops.
        self.calls += 1
        return np.asarray(act(self.actor, observation.astype(np.float32), self.key, self.calls, self.deterministic))

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        """The action in the environment's bounds."""
        return to_env_action(self.unit_action(observation), self.low, self.high)


def to_env_action(unit_action: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Map an action from [-1, 1] to the box [low, high]."""
    return (low + 0.5 * (unit_action + 1.0) * (high - low)).astype(np.float32)


class ReplayBuffer:
    """A numpy ring buffer of transitions (host memory: no device transfer per environment step)."""

    def __init__(self, capacity: int, observation_dim: int, action_dim: int):
        self.observations = np.zeros((capacity, observation_dim), np.float32)
        self.actions = np.zeros((capacity, action_dim), np.float32)  # the actor's [-1, 1] scale
        self.env_actions = np.zeros((capacity, action_dim), np.float32)
        self.rewards = np.zeros(capacity, np.float32)
        self.terminals = np.zeros(capacity, np.float32)
        self.timeouts = np.zeros(capacity, np.float32)
        self.next_observations = np.zeros((capacity, observation_dim), np.float32)
        self.capacity, self.size, self.position = capacity, 0, 0

    def add(self, observation, unit_action, env_action, reward, terminal, timeout, next_observation) -> None:
        """Store one transition, overwriting the oldest when full."""
        i = self.position
        self.observations[i], self.actions[i], self.env_actions[i] = observation, unit_action, env_action
        self.rewards[i], self.terminals[i], self.timeouts[i] = reward, terminal, timeout
        self.next_observations[i] = next_observation
        self.position = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, rng: np.random.Generator, updates: int, batch_size: int) -> Batch:
        """`updates` batches drawn uniformly with replacement, stacked on a leading axis."""
        index = rng.integers(0, self.size, (updates, batch_size))
        return Batch(self.observations[index], self.actions[index], self.rewards[index], self.terminals[index],
                     self.next_observations[index])

    def contents(self) -> Dataset:
        """The stored transitions in the order they were added, as a dataset (actions in the env's bounds)."""
        order = np.arange(self.size) if self.size < self.capacity else np.roll(np.arange(self.capacity),
                                                                               -self.position)
        return Dataset(self.observations[order].copy(), self.env_actions[order].copy(), self.rewards[order].copy(),
                       self.terminals[order].copy(), self.timeouts[order].copy(),
                       self.next_observations[order].copy())


def evaluate_return(policy: Callable[[np.ndarray], np.ndarray], env: gym.Env, episodes: int, seed: int) -> float:
    """Mean undiscounted return of `policy` over `episodes` episodes of `env` (seeded from `seed`)."""
    returns = []
    for episode in range(episodes):
        observation, _ = env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            observation, reward, terminated, truncated, _ = env.step(policy(observation))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


class Snapshot(NamedTuple):
    """The run at the first evaluation whose return reached the target."""

    env_steps: int
    evaluation_return: float
    actor: MLP
    replay: Dataset  # every transition up to then, in order (D4RL's medium-replay)


class SACResult(NamedTuple):
    """A finished SAC run."""

    state: SACState
    curve: tuple[tuple[int, float], ...]  # (environment steps, evaluation return) at every evaluation
    snapshot: Snapshot | None  # None: the target return was never reached (or none was given)
    env_steps: int
    env_steps_per_second: float  # environment steps over the run's wall time (updates and evaluation included)
    updates_per_second: float  # gradient steps per second of the jitted updates, compilation left out
    replay: Dataset | None  # the replay buffer at the end, in order (only with keep_replay)


@dataclass(frozen=True)
class EvaluationConfig:
    """When and how a SAC run is evaluated during training."""

    every_steps: int = 5000
    """Environment steps between evaluations."""
    episodes: int = 5
    """Episodes per evaluation."""
    deterministic: bool = False
    """Evaluate tanh(mean) instead of the stochastic policy (False: the policy that collects the data is the one
    measured, so a dataset's return is the evaluated one)."""

    def __post_init__(self):
        check_range("every_steps", self.every_steps, 1)
        check_range("episodes", self.episodes, 1)


def train_sac(config: SACConfig, make_env: Callable[[], gym.Env], env_steps: int, seed: int, *,
              evaluation: EvaluationConfig = EvaluationConfig(), target_return: float | None = None,
              stop_at_target: bool = False, keep_replay: bool = False, progress: bool = False,
              description: str = "SAC") -> SACResult:
    """Train SAC for up to `env_steps` environment steps; deterministic given `seed` on one machine.

    At the first evaluation whose return reaches `target_return` the actor and the replay buffer so far are kept
    (`SACResult.snapshot`); with `stop_at_target` training ends there. `keep_replay`: also return the whole
    replay buffer."""
    check_range("env_steps", env_steps, 1)
    env, eval_env = make_env(), make_env()
    observation_dim, action_dim = env.observation_space.shape[0], env.action_space.shape[0]
    low, high = env.action_space.low.astype(np.float32), env.action_space.high.astype(np.float32)
    rng = np.random.default_rng(seed)
    state = init(config, observation_dim, action_dim, jax.random.key(seed))
    buffer = ReplayBuffer(min(config.buffer_size, env_steps), observation_dim, action_dim)
    policy = HostPolicy(state.actor, env.action_space, seed + 1)
    curve, snapshot, metrics = [], None, {}
    update_seconds, updates, updates_calls = 0.0, 0, 0
    bar = Progress(progress, env_steps, 0, ("return", "temperature"), "steps", description=description)
    start = time.perf_counter()
    shown: dict[str, float] = {}  # the latest evaluation's return and temperature, kept between evaluations
    observation, _ = env.reset(seed=seed)
    step = 0
    try:
        for step in range(1, env_steps + 1):
            if step <= config.random_steps:
                unit_action = rng.uniform(-1.0, 1.0, action_dim).astype(np.float32)
            else:
                unit_action = policy.unit_action(observation)
            env_action = to_env_action(unit_action, low, high)
            next_observation, reward, terminated, truncated, _ = env.step(env_action)
            buffer.add(observation, unit_action, env_action, reward, terminated, truncated and not terminated,
                       next_observation)
            observation = next_observation
            if terminated or truncated:
                observation, _ = env.reset()
            if step >= config.random_steps and step % config.updates_per_call == 0:
                batches = buffer.sample(rng, config.updates_per_call, config.batch_size)
                tick = time.perf_counter()
                state, metrics = update_many(config, state, batches)
                metrics = {name: float(value) for name, value in metrics.items()}  # waits for the update
                if updates_calls > 0:  # the first call compiles: left out of the speed
                    update_seconds += time.perf_counter() - tick
                    updates += config.updates_per_call
                updates_calls += 1
                policy.actor = state.actor
            if step % evaluation.every_steps == 0 or step == env_steps:
                evaluator = HostPolicy(state.actor, env.action_space, seed + 2 + step, evaluation.deterministic)
                value = evaluate_return(evaluator, eval_env, evaluation.episodes, seed + 10_000 + step)
                curve.append((step, value))
                shown = {"return": value, **metrics}
                bar.advance(step, metrics=shown)
                if target_return is not None and snapshot is None and value >= target_return:
                    # A copy: the next update donates (reuses) the state's buffers.
                    snapshot = Snapshot(step, value, jax.tree.map(jnp.copy, state.actor), buffer.contents())
                    if stop_at_target:
                        break
            elif step % 1000 == 0:
                bar.advance(step, metrics=shown)
    finally:
        bar.close()
        env.close()
        eval_env.close()
    seconds = time.perf_counter() - start
    replay = None
    if keep_replay:  # stopped at the snapshot: its copy of the buffer is the whole buffer
        replay = snapshot.replay if stop_at_target and snapshot is not None else buffer.contents()
    return SACResult(state, tuple(curve), snapshot, step, step / seconds, updates / max(update_seconds, 1e-9),
                     replay)
