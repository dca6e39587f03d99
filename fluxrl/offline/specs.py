"""The dataset type, and what a dataset is for: its D4RL-style name, the environment to evaluate in, the episode
length and D4RL's reference returns (for `normalized_score`); nothing here reads from disk."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from fluxrl.core.config import ConfigError, check_choice


class Dataset(NamedTuple):
    """Transitions of an offline dataset, one row per transition (D4RL's keys)."""

    observations: np.ndarray  # [N, obs_dim] float32
    actions: np.ndarray  # [N, action_dim] float32
    rewards: np.ndarray  # [N] float32
    terminals: np.ndarray  # [N] float32, 1.0: the episode ended in a true terminal state (no bootstrap)
    timeouts: np.ndarray  # [N] float32, 1.0: the episode was cut by its time limit after this transition
    next_observations: np.ndarray  # [N, obs_dim] float32


class DatasetError(ConfigError):
    """A dataset that cannot be used: missing, unreadable, or failing validation; one sentence for people."""


@dataclass(frozen=True)
class _Family:
    env_id: str
    max_episode_steps: int
    ref_min_return: float
    ref_max_return: float
    observation_dim: int
    action_dim: int


# Families outside D4RL's: any Gymnasium environment (raw returns unless reference returns are known), and none.
GYMNASIUM, NO_ENV = "gymnasium", "none"

# D4RL's reference returns (random / expert policy, from D4RL's infos.py); maze2d-* are the v1 datasets'.
# Locomotion evaluates on Gymnasium v4, which keeps the models of the v3 environments D4RL used.
FAMILIES: dict[str, _Family] = {
    "halfcheetah": _Family("HalfCheetah-v4", 1000, -280.178953, 12135.0, 17, 6),
    "hopper": _Family("Hopper-v4", 1000, -20.272305, 3234.3, 11, 3),
    "walker2d": _Family("Walker2d-v4", 1000, 1.629008, 4592.3, 17, 6),
    "maze2d-umaze": _Family("PointMaze_UMaze-v3", 300, 23.85, 161.86, 4, 2),
    "maze2d-medium": _Family("PointMaze_Medium-v3", 600, 13.13, 277.39, 4, 2),
    "maze2d-large": _Family("PointMaze_Large-v3", 800, 6.7, 273.99, 4, 2),
    "maze2d-umaze-dense": _Family("PointMaze_UMazeDense-v3", 300, 68.537689, 193.662856, 4, 2),
    "maze2d-medium-dense": _Family("PointMaze_MediumDense-v3", 600, 44.264742, 297.455255, 4, 2),
    "maze2d-large-dense": _Family("PointMaze_LargeDense-v3", 800, 30.569041, 303.485738, 4, 2),
}
LOCOMOTION = ("halfcheetah", "hopper", "walker2d")
LOCOMOTION_KINDS = ("random", "medium", "medium-replay", "medium-expert", "expert")


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is: its name, environment family, evaluation environment, reference returns and bounds."""

    name: str
    """D4RL-style dataset name without version, e.g. halfcheetah-medium-replay."""
    family: str
    """Environment family: halfcheetah, hopper, walker2d, maze2d-{umaze,medium,large}[-dense]."""
    env_id: str
    """Environment to evaluate in (Gymnasium id; maze2d is built by `fluxrl.envs.control.maze2d`)."""
    max_episode_steps: int
    """Time limit of an evaluation episode (1000 locomotion; maze2d 300 / 600 / 800)."""
    ref_min_return: float
    """D4RL's random-policy return: normalised score 0."""
    ref_max_return: float
    """D4RL's expert-policy return: normalised score 100."""
    observation_dim: int
    """Length of an observation vector."""
    action_dim: int
    """Length of an action vector."""
    action_low: float = -1.0
    """Lower action bound, every dimension."""
    action_high: float = 1.0
    """Upper action bound, every dimension."""

    def __post_init__(self):
        if not self.name:
            raise DatasetError("name must be a non-empty dataset name.")
        check_choice("family", self.family, (*FAMILIES, GYMNASIUM, NO_ENV))
        for field_name in ("max_episode_steps", "observation_dim", "action_dim"):
            if int(getattr(self, field_name)) < 1:
                raise DatasetError(f"{field_name} must be >= 1, got {getattr(self, field_name)}.")
        if self.has_reference and not self.ref_max_return > self.ref_min_return:
            raise DatasetError(f"ref_max_return must be > ref_min_return ({self.ref_min_return}), "
                               f"got {self.ref_max_return}.")
        if not self.action_high > self.action_low:
            raise DatasetError(f"action_high must be > action_low ({self.action_low}), got {self.action_high}.")


    @property
    def has_reference(self) -> bool:
        """Whether reference returns are known, so that returns can be normalised (NaN: raw returns only)."""
        return bool(np.isfinite(self.ref_min_return) and np.isfinite(self.ref_max_return))

    @property
    def has_env(self) -> bool:
        """Whether the data comes with an environment to evaluate in (`--env none`: offline metrics only)."""
        return self.family != NO_ENV


def generic_spec(name: str, env: str, observation_dim: int, action_dim: int, action_low: float = -1.0,
                 action_high: float = 1.0, ref_min_return: float = float("nan"),
                 ref_max_return: float = float("nan")) -> DatasetSpec:
    """A spec for data of any Gymnasium environment `env` (its time limit and action bounds read from
    Gymnasium), or of none (`env="none"`); normalised scores only where reference returns are given."""
    if env == NO_ENV:
        return DatasetSpec(name, NO_ENV, "", 1, ref_min_return, ref_max_return, observation_dim, action_dim,
                           action_low, action_high)
    import gymnasium

    try:
        registered = gymnasium.spec(env)
        probe = gymnasium.make(env)
    except Exception as error:  # gymnasium raises several kinds for an unknown or broken id
        raise DatasetError(f"unknown environment {env!r}: pass a dataset name (e.g. halfcheetah-medium), a "
                           f"family ({', '.join(FAMILIES)}), a Gymnasium id, or none ({error}).") from None
    space = probe.action_space
    probe.close()
    if not hasattr(space, "low"):
        raise DatasetError(f"{env} has a discrete action space; fluxrl's offline algorithms act in Box spaces.")
    return DatasetSpec(name, GYMNASIUM, env, int(registered.max_episode_steps or 1000), ref_min_return,
                       ref_max_return, observation_dim, action_dim, float(np.min(space.low)),
                       float(np.max(space.high)))


def _spec_of_family(name: str, family: str, env_id: str | None = None) -> DatasetSpec:
    """A spec named `name` with `family`'s environment, episode length, reference returns and dimensions."""
    base = FAMILIES[family]
    return DatasetSpec(name=name, family=family, env_id=env_id or base.env_id,
                       max_episode_steps=base.max_episode_steps, ref_min_return=base.ref_min_return,
                       ref_max_return=base.ref_max_return, observation_dim=base.observation_dim,
                       action_dim=base.action_dim)


def _all_specs() -> dict[str, DatasetSpec]:
    """Every D4RL-style name fluxrl knows: locomotion x behaviour kinds, and the sparse and dense mazes."""
    names = {f"{family}-{kind}": family for family in LOCOMOTION for kind in LOCOMOTION_KINDS}
    names.update({family: family for family in FAMILIES if family.startswith("maze2d")})
    return {name: _spec_of_family(name, family) for name, family in names.items()}


SPECS: dict[str, DatasetSpec] = _all_specs()


def strip_version(name: str) -> str:
    """The dataset name without a D4RL / Minari version suffix: halfcheetah-medium-v2 -> halfcheetah-medium."""
    return re.sub(r"-v\d+$", "", name)


def _family_of_env(env: str) -> str | None:
    """The family of a Gymnasium id (HalfCheetah-v4, PointMaze_UMazeDense-v3) or of a family name, else None."""
    if env in FAMILIES:
        return env
    base = strip_version(env).lower()
    if base in FAMILIES:
        return base
    maze = re.fullmatch(r"pointmaze_(umaze|medium|large)(dense)?", base)
    if maze:
        return f"maze2d-{maze.group(1)}" + ("-dense" if maze.group(2) else "")
    return None


def _spec_for_env(env: str, name: str | None) -> DatasetSpec | None:
    """The spec for data from environment `env` (a dataset name, a family, or a Gymnasium id of a D4RL family);
    None for another environment (see `generic_spec`)."""
    env_key = strip_version(env)
    if env_key in SPECS:
        return SPECS[env_key]
    family = _family_of_env(env)
    if family is None:
        return None
    if name in SPECS and SPECS[name].family == family:
        return SPECS[name]
    is_family_name = env in FAMILIES or env_key in FAMILIES
    return _spec_of_family(name or family, family, None if is_family_name else env)


def _spec_from_minari_id(dataset_id: str, env_id: str | None) -> DatasetSpec | None:
    """The spec of a Minari dataset id (D4RL/pointmaze/umaze-dense-v2, mujoco/halfcheetah/medium-v0), or None."""
    parts = dataset_id.split("/")
    kind = strip_version(parts[-1])
    environment = {"pointmaze": "maze2d"}.get(parts[-2], parts[-2]) if len(parts) >= 2 else None
    candidates = [f"{environment}-{kind}"] if environment else []
    candidates.append(kind)
    for candidate in candidates:
        if candidate in SPECS:
            return SPECS[candidate]
    family = _family_of_env(env_id) if env_id else None
    return _spec_of_family(candidates[0], family, env_id) if family else None


def make_env(spec: DatasetSpec, render_mode: str | None = None):
    """A Gymnasium environment to evaluate a policy trained on `spec`'s dataset (time limit included); with
    `render_mode` ("rgb_array"), one that renders its frames."""
    if spec.family.startswith("maze2d"):
        # Imported here: the maze adapter pulls in gymnasium-robotics, which only maze2d runs need.
        from fluxrl.envs.control import maze2d

        return maze2d.make(spec.name, render_mode)
    import gymnasium

    return gymnasium.make(spec.env_id, max_episode_steps=spec.max_episode_steps, render_mode=render_mode)


def normalized_score(spec: DatasetSpec, returns) -> np.ndarray:  # callers check spec.has_reference
    """D4RL's normalised score 100 (R - R_random) / (R_expert - R_random), elementwise over `returns`."""
    returns = np.asarray(returns, dtype=np.float64)
    return 100.0 * (returns - spec.ref_min_return) / (spec.ref_max_return - spec.ref_min_return)
