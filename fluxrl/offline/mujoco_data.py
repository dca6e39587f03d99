"""D4RL-style gym-MuJoCo datasets made locally (Fu et al. 2020, arXiv 2004.07219, section 5): behaviour policies
from our SAC (`sac.py`) on gymnasium's v4 HalfCheetah, Hopper and Walker2d, which keep the models of D4RL's v3
environments. These are not the original D4RL files; call results on them "D4RL-style".

- random: uniform random actions.
- medium: the SAC policy at the first evaluation whose return reaches a third of D4RL's expert reference return
  (`MEDIUM_TARGET_RETURN`), run stochastically.
- medium-replay: that SAC run's replay buffer up to that point, in order (its first `random_steps` transitions are
  uniform random, as in SAC's own warm-up).
- expert: the SAC policy after `expert_steps` environment steps, run stochastically.
- medium-expert: medium and expert concatenated (one SAC run gives both: the medium policy is its snapshot).

Keys are D4RL's: `terminals` is 1 only on a real termination (a fall), `timeouts` is 1 where the 1000-step time
limit cut the episode; a dataset that ends in the middle of an episode has its last transition marked as a
timeout, so every episode ends with one or the other.

Cost on the idle 2-core machine: a simulator step takes ~60 us and a jitted policy call ~90 us, so random data
collects at ~14k steps/s and policy data at ~7k steps/s. SAC (one update per environment step, batch 256, 2x256
MLPs) on HalfCheetah-v4, seed 0, reached the medium target at 70,000 steps in 240 s (about 290 steps/s, updates
and evaluations included), so `halfcheetah-medium-replay` takes about 4 minutes and the expert's default 1M
steps about an hour. Medium and medium-replay come from one SAC run, trained once per process when both are made.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable

import gymnasium as gym
import numpy as np

from fluxrl.core.config import ConfigError, check_range
from fluxrl.core.nets import MLP
from fluxrl.core.progress import Progress
from fluxrl.offline.datasets import Dataset
from fluxrl.offline.sac import SACConfig
from fluxrl.offline.sac_loop import EvaluationConfig, HostPolicy, SACResult, train_sac

ENV_IDS = {"halfcheetah": "HalfCheetah-v4", "hopper": "Hopper-v4", "walker2d": "Walker2d-v4"}
KINDS = ("random", "medium", "medium-replay", "medium-expert", "expert")
NAMES = tuple(f"{env}-{kind}" for env in ENV_IDS for kind in KINDS)
# D4RL's expert reference returns (its `infos.REF_MAX_SCORE`), the scale the medium stop is measured against.
EXPERT_RETURN = {"halfcheetah": 12135.0, "hopper": 3234.3, "walker2d": 4592.3}
MEDIUM_FRACTION = 1.0 / 3.0
# The medium stop: halfcheetah 4045, hopper 1078, walker2d 1531.
MEDIUM_TARGET_RETURN = {env: MEDIUM_FRACTION * value for env, value in EXPERT_RETURN.items()}
D4RL_SIZE = 1_000_000  # transitions of D4RL's random, medium and expert datasets (medium-expert: twice that)
# Seed offsets so that training, the medium collection and the expert collection never share a stream.
MEDIUM_COLLECT_SEED, EXPERT_COLLECT_SEED, RANDOM_COLLECT_SEED = 1_000_003, 2_000_003, 3_000_003


@dataclass(frozen=True)
class MujocoDataConfig:
    """Budgets of the behaviour policies behind the D4RL-style MuJoCo datasets."""

    sac: SACConfig = field(default_factory=SACConfig)
    """The SAC that trains the behaviour policies."""
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    """How often and over how many episodes the SAC policy is evaluated (the medium stop is decided there)."""
    medium_target_return: float | None = None
    """Evaluation return at which the medium policy is taken; None: a third of D4RL's expert return
    (`MEDIUM_TARGET_RETURN`)."""
    max_medium_steps: int = 1_000_000
    """Environment steps after which the medium search gives up and takes the last policy (with a warning)."""
    expert_steps: int = 1_000_000
    """Environment steps of SAC training behind the expert policy (D4RL: a fully trained SAC)."""

    def __post_init__(self):
        check_range("max_medium_steps", self.max_medium_steps, 1)
        check_range("expert_steps", self.expert_steps, 1)


def parse_name(name: str) -> tuple[str, str]:
    """(environment, kind) of a dataset name such as `halfcheetah-medium-replay`."""
    if name not in NAMES:
        raise ConfigError(f"unknown MuJoCo dataset {name!r}; allowed: {', '.join(NAMES)}.")
    env, kind = name.split("-", 1)
    return env, kind


def make_env(env: str) -> gym.Env:
    """The gymnasium v4 MuJoCo environment of a D4RL environment name, with its 1000-step time limit."""
    return gym.make(ENV_IDS[env])


def make_mujoco_dataset(name: str, size: int | None = None, seed: int = 0, progress: bool = False, *,
                        config: MujocoDataConfig = MujocoDataConfig()) -> Dataset:
    """Train the behaviour policy of a D4RL-style dataset and collect it; deterministic given `seed`.

    `size`: transitions (None: D4RL's 1M for random, medium and expert, 2M for medium-expert, whatever the
    replay buffer holds for medium-replay)."""
    env, kind = parse_name(name)
    if size is not None:
        check_range("size", size, 2 if kind == "medium-expert" else 1)
    env_factory: Callable[[], gym.Env] = lambda: make_env(env)  # noqa: E731
    target = MEDIUM_TARGET_RETURN[env] if config.medium_target_return is None else config.medium_target_return
    if kind == "random":
        return collect(env_factory, None, size or D4RL_SIZE, seed + RANDOM_COLLECT_SEED, progress, f"{name} collect")
    if kind in ("medium", "medium-replay"):
        actor, replay = _medium_run(env, seed, config, target, progress)
        if kind == "medium-replay":
            if size is not None and size > replay.rewards.shape[0]:
                raise ConfigError(f"size must be at most {replay.rewards.shape[0]} for {name} (the replay buffer "
                                  f"holds that many transitions), got {size}.")
            return end_last_episode(Dataset(*(array[:size] for array in replay)))
        policy = HostPolicy(actor, action_space_of(env), seed + MEDIUM_COLLECT_SEED)
        return collect(env_factory, policy, size or D4RL_SIZE, seed + MEDIUM_COLLECT_SEED, progress,
                       f"{name} collect")
    with_medium = kind == "medium-expert"
    result = train_sac(config.sac, env_factory, config.expert_steps, seed, evaluation=config.evaluation,
                       target_return=target if with_medium else None, progress=progress, description=f"{name} SAC")
    action_space = action_space_of(env)
    expert_policy = HostPolicy(result.state.actor, action_space, seed + EXPERT_COLLECT_SEED)
    if not with_medium:
        return collect(env_factory, expert_policy, size or D4RL_SIZE, seed + EXPERT_COLLECT_SEED, progress,
                       f"{name} collect")
    medium_size = D4RL_SIZE if size is None else size // 2
    expert_size = D4RL_SIZE if size is None else size - size // 2
    medium_policy = HostPolicy(medium_of(result, target, name)[0], action_space, seed + MEDIUM_COLLECT_SEED)
    medium = collect(env_factory, medium_policy, medium_size, seed + MEDIUM_COLLECT_SEED, progress,
                     f"{name} collect medium")
    expert = collect(env_factory, expert_policy, expert_size, seed + EXPERT_COLLECT_SEED, progress,
                     f"{name} collect expert")
    return Dataset(*(np.concatenate([a, b]) for a, b in zip(medium, expert)))


# The last medium SAC run of this process: medium and medium-replay come from the same run, so making both (a
# reproduction does) trains SAC once.
_MEDIUM_RUNS: dict[tuple, tuple[MLP, Dataset | None]] = {}


def _medium_run(env: str, seed: int, config: MujocoDataConfig, target: float,
                progress: bool) -> tuple[MLP, Dataset | None]:
    """(medium actor, replay buffer up to it) of the SAC run behind `env`'s medium datasets, trained once."""
    key = (env, seed, config, target)
    if key not in _MEDIUM_RUNS:
        result = train_sac(config.sac, lambda: make_env(env), config.max_medium_steps, seed,
                           evaluation=config.evaluation, target_return=target, stop_at_target=True, keep_replay=True,
                           progress=progress, description=f"{env}-medium SAC")
        _MEDIUM_RUNS.clear()
        _MEDIUM_RUNS[key] = medium_of(result, target, f"{env}-medium")
    return _MEDIUM_RUNS[key]


def medium_of(result: SACResult, target: float, name: str) -> tuple[MLP, Dataset | None]:
    """(medium actor, replay buffer up to it) of a SAC run; the run's last ones, with a warning, if the target
    return was never reached."""
    if result.snapshot is not None:
        return result.snapshot.actor, result.snapshot.replay
    best = max(value for _, value in result.curve)
    warnings.warn(f"{name}: SAC never reached the medium target return {target:.0f} in {result.env_steps} steps "
                  f"(best evaluation {best:.0f}); its last policy is used.", stacklevel=3)
    return result.state.actor, result.replay


def action_space_of(env: str) -> gym.spaces.Box:
    """The action box of a D4RL environment name."""
    instance = make_env(env)
    space = instance.action_space
    instance.close()
    return space


def collect(make: Callable[[], gym.Env], policy: Callable[[np.ndarray], np.ndarray] | None, size: int, seed: int,
            progress: bool = False, description: str = "collect") -> Dataset:
    """`size` transitions of `policy` (None: uniform random actions) in episodes of the environment.

    Observations, rewards and next observations are float32; `terminals` marks real terminations only and
    `timeouts` the time limit's cuts (and the last transition, when the dataset ends mid-episode)."""
    env = make()
    observation_dim, action_dim = env.observation_space.shape[0], env.action_space.shape[0]
    rng = np.random.default_rng(seed)
    low, high = env.action_space.low, env.action_space.high
    observations = np.zeros((size, observation_dim), np.float32)
    next_observations = np.zeros((size, observation_dim), np.float32)
    actions = np.zeros((size, action_dim), np.float32)
    rewards, terminals, timeouts = (np.zeros(size, np.float32) for _ in range(3))
    bar = Progress(progress, size, 0, ("return",), "steps", description=description)
    observation, _ = env.reset(seed=seed)
    episode_return, last_return = 0.0, float("nan")
    try:
        for t in range(size):
            action = rng.uniform(low, high).astype(np.float32) if policy is None else policy(observation)
            next_observation, reward, terminated, truncated, _ = env.step(action)
            observations[t], actions[t], rewards[t] = observation, action, reward
            next_observations[t] = next_observation
            terminals[t], timeouts[t] = terminated, truncated and not terminated
            episode_return += float(reward)
            if terminated or truncated:
                observation, _ = env.reset()
                episode_return, last_return = 0.0, episode_return
            else:
                observation = next_observation
            if (t + 1) % 1000 == 0 or t + 1 == size:
                bar.advance(t + 1, metrics={"return": last_return})
    finally:
        bar.close()
        env.close()
    return end_last_episode(Dataset(observations, actions, rewards, terminals, timeouts, next_observations))


def end_last_episode(dataset: Dataset) -> Dataset:
    """The dataset with its last transition marked as a timeout unless it is a terminal, so that every episode
    ends with a terminal or a timeout."""
    timeouts = dataset.timeouts.copy()
    if timeouts.shape[0] and not dataset.terminals[-1]:
        timeouts[-1] = 1.0
    return dataset._replace(timeouts=timeouts)
