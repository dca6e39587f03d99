"""Soft Actor-Critic (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications", arXiv 1812.05905):
the behaviour policies of the D4RL-style MuJoCo datasets.

The standard settings of that paper (its Table 1): two hidden layers of 256 ReLU units for the actor and each of
the twin critics, Adam with learning rate 3e-4, batch 256, discount 0.99, target smoothing 5e-3, a replay buffer of
1M transitions, one gradient step per environment step, a tanh-squashed Gaussian actor and an automatically tuned
entropy temperature with target entropy -dim(A).

The gradient step is one jitted pure function `update(config, state, batch) -> (state, metrics)`; the simulator is
not JAX, so environment interaction is a host loop (`train_sac`) around it. To keep the per-step host overhead
small the replay buffer is numpy, the policy is one jitted call per step, and the updates run
`updates_per_call` at a time in one jitted `lax.scan` after as many environment steps (Spinning Up's SAC does the
same with `update_every=50`), which keeps the ratio of one update per step.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import partial
from typing import Callable, NamedTuple

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import optax

from fluxrl.core.config import check_range
from fluxrl.core.nets import MLP, mlp
from fluxrl.offline.datasets import Dataset

# Bounds on the actor's log standard deviation, as in the authors' code (softlearning): wide enough never to bind
# in practice, narrow enough that exp() cannot overflow or collapse to zero.
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


@dataclass(frozen=True)
class SACConfig:
    """Soft Actor-Critic's settings; the defaults are Haarnoja et al. 2018's (arXiv 1812.05905, Table 1)."""

    hidden_width: int = 256
    """Units per hidden layer of the actor and of each critic."""
    hidden_depth: int = 2
    """Hidden layers of the actor and of each critic."""
    lr: float = 3e-4
    """Adam learning rate of the actor, the critics and the temperature (> 0)."""
    gamma: float = 0.99
    """Discount, in [0, 1]."""
    tau: float = 5e-3
    """Target critics move this fraction towards the critics after every update, in (0, 1]."""
    batch_size: int = 256
    """Transitions per gradient step."""
    buffer_size: int = 1_000_000
    """Replay buffer capacity in transitions (the oldest are overwritten)."""
    random_steps: int = 10_000
    """Environment steps taken with uniform random actions before the first update (softlearning's MuJoCo
    setting)."""
    updates_per_call: int = 50
    """Gradient steps run in one jitted call, after as many environment steps (a speed knob; one update per step
    on average either way)."""
    initial_temperature: float = 1.0
    """Entropy temperature alpha at the start (> 0)."""
    target_entropy_per_dim: float = -1.0
    """Target entropy per action dimension (the paper: -1, so -dim(A) in all)."""

    def __post_init__(self):
        check_range("hidden_width", self.hidden_width, 1)
        check_range("hidden_depth", self.hidden_depth, 1)
        check_range("lr", self.lr, 0.0, low_open=True)
        check_range("gamma", self.gamma, 0.0, 1.0)
        check_range("tau", self.tau, 0.0, 1.0, low_open=True)
        check_range("batch_size", self.batch_size, 1)
        check_range("buffer_size", self.buffer_size, self.batch_size)
        check_range("random_steps", self.random_steps, self.batch_size)
        check_range("updates_per_call", self.updates_per_call, 1)
        check_range("initial_temperature", self.initial_temperature, 0.0, low_open=True)


class Batch(NamedTuple):
    """Transitions for one gradient step (leading axis: batch); actions in the actor's [-1, 1] scale."""

    observations: jax.Array
    actions: jax.Array
    rewards: jax.Array
    terminals: jax.Array  # 1.0: a true terminal state, no bootstrap (a time-limit cut is not terminal)
    next_observations: jax.Array


class SACState(NamedTuple):
    """Everything SAC's updates need: networks, optimiser states, temperature and the key."""

    actor: MLP  # obs -> (mean, log_std) of the pre-tanh Gaussian
    critics: tuple[MLP, MLP]  # (obs, action) -> Q; a pair, not a stacked vmap, which XLA's CPU runs ~2x slower
    target_critics: tuple[MLP, MLP]
    log_temperature: jax.Array
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    temperature_opt: optax.OptState
    key: jax.Array
    updates: jax.Array


def init(config: SACConfig, observation_dim: int, action_dim: int, key: jax.Array) -> SACState:
    """A fresh SAC state for the given observation and action sizes."""
    actor_key, critic_key, key = jax.random.split(key, 3)
    actor = mlp(observation_dim, 2 * action_dim, config.hidden_width, config.hidden_depth, actor_key)
    critics = tuple(mlp(observation_dim + action_dim, 1, config.hidden_width, config.hidden_depth, k)
                    for k in jax.random.split(critic_key, 2))
    log_temperature = jnp.asarray(math.log(config.initial_temperature), jnp.float32)
    optimiser = optax.adam(config.lr)
    target_critics = jax.tree.map(jnp.copy, critics)  # own buffers: the update donates its state
    return SACState(actor, critics, target_critics, log_temperature, optimiser.init(actor), optimiser.init(critics),
                    optimiser.init(log_temperature), key, jnp.zeros((), jnp.int32))


def gaussian_parameters(actor: MLP, observation: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(mean, log_std) of the actor's pre-tanh Gaussian for one observation."""
    mean, log_std = jnp.split(actor(observation), 2)
    return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)


def sample_action(actor: MLP, observation: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(action in [-1, 1], its log-density) for one observation, by reparameterisation through tanh.

    log pi(a|s) = log N(u; mu, sigma) - sum_i log(1 - tanh(u_i)^2)  (Haarnoja et al. 2018, appendix C), with
    log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)) written so it stays finite where tanh saturates."""
    mean, log_std = gaussian_parameters(actor, observation)
    noise = jax.random.normal(key, mean.shape)
    pre_tanh = mean + jnp.exp(log_std) * noise
    log_density = jnp.sum(-0.5 * noise ** 2 - log_std - 0.5 * math.log(2 * math.pi))
    log_jacobian = jnp.sum(2.0 * (math.log(2.0) - pre_tanh - jax.nn.softplus(-2.0 * pre_tanh)))
    return jnp.tanh(pre_tanh), log_density - log_jacobian


def q_values(critics: tuple[MLP, MLP], observations: jax.Array, actions: jax.Array) -> jax.Array:
    """[2, batch] values of both critics."""
    inputs = jnp.concatenate([observations, actions], axis=-1)
    return jnp.stack([jax.vmap(critic)(inputs)[:, 0] for critic in critics])


def critic_loss(critics: tuple[MLP, MLP], target: jax.Array, batch: Batch) -> jax.Array:
    """Soft Bellman residual J_Q = E[0.5 (Q_i(s, a) - y)^2] summed over the twin critics (eq. 5)."""
    return jnp.sum(jnp.mean(0.5 * (q_values(critics, batch.observations, batch.actions) - target) ** 2, axis=1))


def actor_loss(actor: MLP, critics: tuple[MLP, MLP], temperature: jax.Array, observations: jax.Array,
               key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(J_pi = E[alpha log pi(a|s) - min_i Q_i(s, a)], the batch's log-densities), a ~ pi reparameterised (eq. 7)."""
    keys = jax.random.split(key, observations.shape[0])
    actions, log_probs = jax.vmap(sample_action, (None, 0, 0))(actor, observations, keys)
    q_min = jnp.min(q_values(critics, observations, actions), axis=0)
    return jnp.mean(temperature * log_probs - q_min), log_probs


def temperature_loss(log_temperature: jax.Array, log_probs: jax.Array, target_entropy: float) -> jax.Array:
    """J(alpha) = E[-log alpha (log pi(a|s) + target entropy)] (eq. 18, on log alpha as in the authors' code)."""
    return -jnp.mean(log_temperature * jax.lax.stop_gradient(log_probs + target_entropy))


def update(config: SACConfig, state: SACState, batch: Batch) -> tuple[SACState, dict[str, jax.Array]]:
    """One SAC gradient step: critics, then actor and temperature, then the target critics (Algorithm 1)."""
    optimiser = optax.adam(config.lr)
    key, next_key, actor_key = jax.random.split(state.key, 3)
    temperature = jnp.exp(state.log_temperature)

    next_keys = jax.random.split(next_key, batch.observations.shape[0])
    next_actions, next_log_probs = jax.vmap(sample_action, (None, 0, 0))(state.actor, batch.next_observations,
                                                                        next_keys)
    next_q = jnp.min(q_values(state.target_critics, batch.next_observations, next_actions), axis=0)
    target = batch.rewards + config.gamma * (1.0 - batch.terminals) * (next_q - temperature * next_log_probs)
    loss_q, critic_grads = jax.value_and_grad(critic_loss)(state.critics, jax.lax.stop_gradient(target), batch)
    critic_updates, critic_opt = optimiser.update(critic_grads, state.critic_opt)
    critics = optax.apply_updates(state.critics, critic_updates)

    (loss_pi, log_probs), actor_grads = jax.value_and_grad(actor_loss, has_aux=True)(
        state.actor, critics, temperature, batch.observations, actor_key)
    actor_updates, actor_opt = optimiser.update(actor_grads, state.actor_opt)
    actor = optax.apply_updates(state.actor, actor_updates)

    target_entropy = config.target_entropy_per_dim * batch.actions.shape[-1]
    loss_alpha, temperature_grad = jax.value_and_grad(temperature_loss)(state.log_temperature, log_probs,
                                                                        target_entropy)
    temperature_update, temperature_opt = optimiser.update(temperature_grad, state.temperature_opt)
    log_temperature = optax.apply_updates(state.log_temperature, temperature_update)

    target_critics = optax.incremental_update(critics, state.target_critics, config.tau)
    metrics = {"critic_loss": loss_q, "actor_loss": loss_pi, "temperature_loss": loss_alpha,
               "temperature": temperature, "entropy": -jnp.mean(log_probs), "target_q_mean": jnp.mean(target)}
    new_state = SACState(actor, critics, target_critics, log_temperature, actor_opt, critic_opt, temperature_opt,
                         key, state.updates + 1)
    return new_state, metrics


@partial(jax.jit, static_argnums=0, donate_argnums=1)
def update_many(config: SACConfig, state: SACState, batches: Batch) -> tuple[SACState, dict[str, jax.Array]]:
    """`update` over a stack of batches (leading axis: updates) in one compiled scan; metrics averaged."""
    state, metrics = jax.lax.scan(partial(update, config), state, batches)
    return state, jax.tree.map(jnp.mean, metrics)


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
    bar = ProgressBar(progress, description, env_steps)
    start = time.perf_counter()
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
                bar.advance(step, {"return": value, **metrics})
                if target_return is not None and snapshot is None and value >= target_return:
                    # A copy: the next update donates (reuses) the state's buffers.
                    snapshot = Snapshot(step, value, jax.tree.map(jnp.copy, state.actor), buffer.contents())
                    if stop_at_target:
                        break
            elif step % 1000 == 0:
                bar.advance(step, None)
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


class ProgressBar:
    """A rich progress bar over environment steps showing steps/s and the latest evaluation return."""

    def __init__(self, enabled: bool, description: str, total: int):
        self.bar, self.shown, self.start = None, "", time.perf_counter()
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[speed]}"), TimeRemainingColumn(),
                                TextColumn("{task.fields[shown]}"))
            self.task = self.bar.add_task(description, total=total, speed="", shown="")
            self.bar.start()

    def advance(self, steps: int, metrics: dict[str, float] | None) -> None:
        """Move to `steps`; show `metrics` (None: keep the last ones shown)."""
        if self.bar is None:
            return
        if metrics is not None:
            self.shown = "  ".join(f"{name} {value:.4g}" for name, value in metrics.items()
                                   if name in ("return", "temperature"))
        speed = steps / max(time.perf_counter() - self.start, 1e-9)
        self.bar.update(self.task, completed=steps, speed=f"{speed:,.0f} steps/s", shown=self.shown)

    def close(self) -> None:
        """Stop drawing."""
        if self.bar is not None:
            self.bar.stop()
