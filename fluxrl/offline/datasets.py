"""Offline datasets: one type, loaded from D4RL `.hdf5`, `.npz` or a local Minari directory; never downloaded.

A dataset is known by a `DatasetSpec`: its D4RL-style name, the environment family it comes from, the
environment to evaluate in, the episode length, D4RL's reference returns (for `normalized_score`) and the
action bounds. Everything read is checked by `validate` before it is used or written; every problem is one
`DatasetError` (a `ConfigError`, so the command line prints one line and exits with status 2).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

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


# Ranks of each field: per-transition vectors are rank 2, per-transition scalars rank 1.
_RANKS = {"observations": 2, "actions": 2, "rewards": 1, "terminals": 1, "timeouts": 1, "next_observations": 2}
# Actions a hair outside the bounds are float noise (e.g. a clipped float64 stored as float32), not a bug.
ACTION_TOLERANCE = 1e-4
# File attribute (hdf5) or key (npz) holding the spec of a file we wrote, as JSON.
SPEC_KEY = "fluxrl_spec"
MINARI_DATA = Path("data") / "main_data.hdf5"
MINARI_METADATA = Path("data") / "metadata.json"


@dataclass(frozen=True)
class _Family:
    env_id: str
    max_episode_steps: int
    ref_min_return: float
    ref_max_return: float
    observation_dim: int
    action_dim: int


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
        check_choice("family", self.family, tuple(FAMILIES))
        for field_name in ("max_episode_steps", "observation_dim", "action_dim"):
            if int(getattr(self, field_name)) < 1:
                raise DatasetError(f"{field_name} must be >= 1, got {getattr(self, field_name)}.")
        if not self.ref_max_return > self.ref_min_return:
            raise DatasetError(f"ref_max_return must be > ref_min_return ({self.ref_min_return}), "
                               f"got {self.ref_max_return}.")
        if not self.action_high > self.action_low:
            raise DatasetError(f"action_high must be > action_low ({self.action_low}), got {self.action_high}.")


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


def _spec_for_env(env: str, name: str | None) -> DatasetSpec:
    """The spec for data from environment `env` (a dataset name, a family, or a Gymnasium id)."""
    env_key = strip_version(env)
    if env_key in SPECS:
        return SPECS[env_key]
    family = _family_of_env(env)
    if family is None:
        raise DatasetError(f"unknown environment {env!r}: pass a dataset name (e.g. halfcheetah-medium), a family "
                           f"({', '.join(FAMILIES)}) or a Gymnasium id such as HalfCheetah-v4.")
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


def spec_for(name_or_path: str | os.PathLike, env: str | None = None) -> DatasetSpec:
    """The spec of a dataset: from `env` if given, a known name, our files' metadata, or a D4RL file name."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if env is not None:
        return _spec_for_env(env, _name_of_file(path))
    if not path.exists() and strip_version(text) in SPECS:
        return SPECS[strip_version(text)]
    metadata = _read_metadata(path) if path.exists() else {}
    return _spec_from_metadata(path, metadata) or _spec_from_file_name(path)


def _name_of_file(path: Path) -> str:
    """The dataset name a file name suggests: halfcheetah-medium-replay-v2.hdf5 -> halfcheetah-medium-replay."""
    return strip_version(path.name.removesuffix(path.suffix) if path.suffix in _SUFFIXES else path.name)


def _spec_from_file_name(path: Path) -> DatasetSpec:
    """The spec of a D4RL-named file, or a DatasetError asking for the environment."""
    name = _name_of_file(path)
    if name in SPECS:
        return SPECS[name]
    raise DatasetError(f"cannot tell which environment {path} comes from; pass the environment "
                       f"(a dataset name such as halfcheetah-medium, or a Gymnasium id such as HalfCheetah-v4).")


def _spec_from_metadata(path: Path, metadata: dict[str, Any]) -> DatasetSpec | None:
    """The spec stored in our own files, or read from a Minari directory's metadata; None when absent."""
    if SPEC_KEY in metadata:
        try:
            return DatasetSpec(**json.loads(metadata[SPEC_KEY]))
        except (TypeError, ValueError) as error:
            raise DatasetError(f"{path} has an unreadable dataset description ({error}).") from None
    if "dataset_id" in metadata:
        env_id = None
        if metadata.get("env_spec"):
            try:
                env_id = json.loads(metadata["env_spec"]).get("id")
            except (TypeError, ValueError, AttributeError):
                env_id = None
        return _spec_from_minari_id(str(metadata["dataset_id"]), env_id)
    return None


def make_env(spec: DatasetSpec):
    """A Gymnasium environment to evaluate a policy trained on `spec`'s dataset (time limit included)."""
    if spec.family.startswith("maze2d"):
        # Imported here: the maze adapter pulls in gymnasium-robotics, which only maze2d runs need.
        from fluxrl.envs.control import maze2d

        return maze2d.make(spec.name)
    import gymnasium

    return gymnasium.make(spec.env_id, max_episode_steps=spec.max_episode_steps)


def default_data_dir() -> Path:
    """Where `fluxrl data make` writes: $FLUXRL_DATA_DIR, else $XDG_CACHE_HOME/fluxrl/datasets, else ~/.cache."""
    if os.environ.get("FLUXRL_DATA_DIR"):
        return Path(os.environ["FLUXRL_DATA_DIR"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(cache) / "fluxrl" / "datasets"


# ---------------------------------------------------------------------------------------------- reading

_HDF5_SUFFIXES = (".hdf5", ".h5")
_SUFFIXES = _HDF5_SUFFIXES + (".npz",)
# What h5py, numpy and zipfile raise on a truncated, corrupt or foreign file.
_READ_ERRORS = (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, RuntimeError)


def _unreadable(path: Path, what: str = "file") -> DatasetError:
    """The one-sentence error for a file that h5py / numpy cannot read."""
    return DatasetError(f"cannot read {path}: the {what} is truncated, corrupt or not in the expected format.")


def _read_metadata(path: Path) -> dict[str, Any]:
    """Metadata of a dataset file or Minari directory: our stored spec, or Minari's metadata.json."""
    if path.is_dir():
        metadata_path = _minari_root(path) / MINARI_METADATA
        try:
            return json.loads(metadata_path.read_text())
        except FileNotFoundError:
            raise DatasetError(f"{path} is not a Minari dataset directory: {MINARI_METADATA} is missing.") from None
        except (OSError, ValueError):
            raise _unreadable(metadata_path) from None
    if path.suffix in _HDF5_SUFFIXES:
        import h5py

        try:
            with h5py.File(path, "r") as file:
                return {key: _attr_text(value) for key, value in file.attrs.items()}
        except _READ_ERRORS:
            raise _unreadable(path) from None
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                return {SPEC_KEY: str(archive[SPEC_KEY])} if SPEC_KEY in archive.files else {}
        except _READ_ERRORS:
            raise _unreadable(path) from None
    return {}


def _attr_text(value: Any) -> Any:
    """An hdf5 attribute as Python text where it is text (h5py may hand back bytes)."""
    return value.decode() if isinstance(value, bytes) else value


def _as_float32(array: np.ndarray) -> np.ndarray:
    """`array` as float32 (booleans become 0.0 / 1.0)."""
    return np.asarray(array, dtype=np.float32)


def _derive_next_observations(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """D4RL `qlearning_dataset`: next observation = the following row; drop each timeout row and the last row.

    The rows D4RL drops are the last of an episode cut by its time limit (their next observation is not in
    the file). The row before each dropped one becomes the last row of its episode in our data, so it is
    marked as a timeout: the episode was cut after it (its next observation is still the true one).
    """
    count = len(arrays["observations"])
    timeouts = arrays["timeouts"].astype(bool)
    terminals = arrays["terminals"].astype(bool)
    keep = ~timeouts
    keep[-1:] = False  # the last row has no following row
    dropped = ~keep
    kept_index = np.flatnonzero(keep)
    # A kept row followed by a dropped one now ends its (cut) episode, unless it is a true terminal.
    next_dropped = np.zeros(count, dtype=bool)
    next_dropped[:-1] = dropped[1:]
    new_timeouts = (next_dropped & ~terminals)[kept_index]
    return {"observations": arrays["observations"][kept_index], "actions": arrays["actions"][kept_index],
            "rewards": arrays["rewards"][kept_index], "terminals": arrays["terminals"][kept_index],
            "timeouts": new_timeouts, "next_observations": arrays["observations"][kept_index + 1]}


def _dataset_from_arrays(path: Path, arrays: dict[str, np.ndarray]) -> Dataset:
    """A Dataset from D4RL-keyed arrays, deriving next_observations when the file has none."""
    for key in ("observations", "actions", "rewards", "terminals", "timeouts"):
        if key not in arrays:
            raise DatasetError(f"{path} has no {key!r} array; a D4RL-format dataset needs observations, "
                               f"actions, rewards, terminals and timeouts.")
    lengths = {key: len(value) if np.ndim(value) else 0 for key, value in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise DatasetError(f"{path} has arrays of different lengths: "
                           + ", ".join(f"{key} {length}" for key, length in lengths.items()) + ".")
    if "next_observations" not in arrays:
        if lengths["observations"] < 2:
            raise DatasetError(f"{path} has fewer than 2 rows, too few to derive next_observations.")
        arrays = _derive_next_observations(arrays)
    return Dataset(**{key: _as_float32(arrays[key]) for key in Dataset._fields})


def _read_hdf5(path: Path) -> tuple[Dataset, dict[str, Any]]:
    """A D4RL-format `.hdf5`: top-level observations, actions, rewards, terminals, timeouts[, next_observations]."""
    import h5py

    try:
        with h5py.File(path, "r") as file:
            arrays = {key: file[key][()] for key in Dataset._fields
                      if key in file and isinstance(file[key], h5py.Dataset)}
            metadata = {key: _attr_text(value) for key, value in file.attrs.items()}
    except _READ_ERRORS:
        raise _unreadable(path) from None
    return _dataset_from_arrays(path, arrays), metadata


def _read_npz(path: Path) -> tuple[Dataset, dict[str, Any]]:
    """An `.npz` with D4RL's keys."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in Dataset._fields if key in archive.files}
            metadata = {SPEC_KEY: str(archive[SPEC_KEY])} if SPEC_KEY in archive.files else {}
    except _READ_ERRORS:
        raise _unreadable(path) from None
    return _dataset_from_arrays(path, arrays), metadata


def _minari_root(path: Path) -> Path:
    """The Minari dataset directory (the one holding data/) for `path` or its data/ subdirectory."""
    return path.parent if path.name == "data" and (path / "main_data.hdf5").exists() else path


def _episode_number(name: str) -> int:
    """The index of a Minari group name episode_<i>."""
    return int(name.split("_", 1)[1])


def _read_minari(path: Path) -> tuple[Dataset, dict[str, Any]]:
    """A local Minari directory: data/main_data.hdf5 with groups episode_<i> (observations of length T+1)."""
    import h5py

    root = _minari_root(path)
    metadata = _read_metadata(root)
    data_path = root / MINARI_DATA
    if not data_path.exists():
        raise DatasetError(f"{root} is not a Minari dataset directory: {MINARI_DATA} is missing.")
    parts: dict[str, list[np.ndarray]] = {key: [] for key in Dataset._fields}
    try:
        with h5py.File(data_path, "r") as file:
            names = sorted((name for name in file if re.fullmatch(r"episode_\d+", name)), key=_episode_number)
            for name in names:
                _append_minari_episode(data_path, name, file[name], parts)
    except DatasetError:
        raise
    except _READ_ERRORS:
        raise _unreadable(data_path) from None
    if not names or not parts["rewards"]:
        raise DatasetError(f"{data_path} holds no episodes with at least one step.")
    dataset = Dataset(**{key: _as_float32(np.concatenate(value)) for key, value in parts.items()})
    return dataset, metadata


def _append_minari_episode(data_path: Path, name: str, group, parts: dict[str, list[np.ndarray]]) -> None:
    """Append one Minari episode's transitions to `parts` (observations[t], observations[t+1] per step)."""
    import h5py

    for key in ("observations", "actions", "rewards", "terminations", "truncations"):
        if key not in group:
            raise DatasetError(f"{data_path} episode {name} has no {key!r}.")
    observations = group["observations"]
    if isinstance(observations, h5py.Group):
        # Goal-conditioned datasets (PointMaze) store a dict; the agent's state is its "observation" entry.
        if "observation" not in observations:
            raise DatasetError(f"{data_path} episode {name} stores observations as a dict without an "
                               f"'observation' entry ({', '.join(observations)}).")
        observations = observations["observation"]
    observations = np.asarray(observations[()])
    rewards = np.asarray(group["rewards"][()])
    steps = len(rewards)
    if steps == 0:
        return
    if len(observations) != steps + 1:
        raise DatasetError(f"{data_path} episode {name} has {len(observations)} observations for {steps} steps "
                           f"(Minari stores steps + 1).")
    terminals = np.asarray(group["terminations"][()]).astype(bool)
    timeouts = np.asarray(group["truncations"][()]).astype(bool)
    actions = np.asarray(group["actions"][()])
    if len(terminals) != steps or len(timeouts) != steps or len(actions) != steps:
        raise DatasetError(f"{data_path} episode {name} has actions, rewards, terminations and truncations of "
                           f"different lengths.")
    timeouts = timeouts.copy()
    # An episode that stops without terminating was cut: mark it so episodes stay apart in the flat data.
    timeouts[-1] |= not terminals[-1]
    parts["observations"].append(observations[:-1].reshape(steps, -1))
    parts["next_observations"].append(observations[1:].reshape(steps, -1))
    parts["actions"].append(actions.reshape(steps, -1))
    parts["rewards"].append(rewards.reshape(steps))
    parts["terminals"].append(terminals)
    parts["timeouts"].append(timeouts)


def _resolve_path(name_or_path: str | os.PathLike, data_dir: str | os.PathLike | None) -> Path:
    """The file or directory a name or path refers to; a bare name is `<data_dir>/<name>.hdf5`."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.exists():
        return path
    looks_like_path = os.sep in text or "/" in text or path.suffix in _SUFFIXES
    if looks_like_path:
        raise DatasetError(f"no dataset file or directory at {text}.")
    name = strip_version(text)
    directory = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    candidate = directory / f"{name}.hdf5"
    if candidate.exists():
        return candidate
    if name in SPECS:
        raise DatasetError(f"dataset {name} is not in {directory}; make it with `fluxrl data make {name}` "
                           f"(nothing is downloaded).")
    raise DatasetError(f"unknown dataset {text!r}: not a file, and not one of fluxrl's names "
                       f"(e.g. halfcheetah-medium-replay, maze2d-umaze).")


def load(name_or_path: str | os.PathLike, data_dir: str | os.PathLike | None = None,
         env: str | None = None) -> tuple[Dataset, DatasetSpec]:
    """Load and validate a dataset from a name (in `data_dir`), a D4RL `.hdf5`, an `.npz` or a Minari directory.

    `env` (a dataset name, a family or a Gymnasium id) says which environment the data comes from when the
    file does not tell.
    """
    path = _resolve_path(name_or_path, data_dir)
    if path.is_dir():
        dataset, metadata = _read_minari(path)
    elif path.suffix in _HDF5_SUFFIXES:
        dataset, metadata = _read_hdf5(path)
    elif path.suffix == ".npz":
        dataset, metadata = _read_npz(path)
    else:
        raise DatasetError(f"{path} is not a dataset: expected a .hdf5 or .npz file or a Minari directory.")
    if env is not None:
        spec = _spec_for_env(env, _name_of_file(path))
    else:
        spec = _spec_from_metadata(path, metadata) or _spec_from_file_name(path)
    validate(dataset, spec)
    return dataset, spec


# ------------------------------------------------------------------------------------------- validation

def validate(dataset: Dataset, spec: DatasetSpec) -> None:
    """Raise one DatasetError for the first problem: missing array, rank, length, NaN/inf, bounds, flags."""
    for key, rank in _RANKS.items():
        array = getattr(dataset, key)
        if array is None:
            raise DatasetError(f"the dataset has no {key!r} array.")
        if np.ndim(array) != rank:
            raise DatasetError(f"{key} must have rank {rank} ([N{', dim' if rank == 2 else ''}]), "
                               f"got shape {np.shape(array)}.")
    lengths = {key: len(getattr(dataset, key)) for key in _RANKS}
    if len(set(lengths.values())) > 1:
        raise DatasetError("arrays have different lengths: "
                           + ", ".join(f"{key} {length}" for key, length in lengths.items()) + ".")
    if lengths["observations"] == 0:
        raise DatasetError("the dataset has no transitions.")
    for key, expected in (("observations", spec.observation_dim), ("next_observations", spec.observation_dim),
                          ("actions", spec.action_dim)):
        width = np.shape(getattr(dataset, key))[1]
        if width != expected:
            raise DatasetError(f"{key} have {width} dimensions but {spec.name} ({spec.env_id}) has {expected}; "
                               f"pass the right environment.")
    for key in _RANKS:
        array = np.asarray(getattr(dataset, key))
        if not np.issubdtype(array.dtype, np.number) and array.dtype != bool:
            raise DatasetError(f"{key} must be numbers, got dtype {array.dtype}.")
        finite = np.isfinite(array)
        if not finite.all():
            row = int(np.argwhere(~finite)[0][0])
            raise DatasetError(f"{key} has {int((~finite).sum())} NaN or infinite values (first at row {row}).")
    actions = np.asarray(dataset.actions)
    outside = (actions < spec.action_low - ACTION_TOLERANCE) | (actions > spec.action_high + ACTION_TOLERANCE)
    if outside.any():
        row = int(np.argwhere(outside)[0][0])
        raise DatasetError(f"{int(outside.sum())} action values lie outside the bounds [{spec.action_low}, "
                           f"{spec.action_high}] of {spec.name} (first at row {row}, "
                           f"range {actions.min():.4g} to {actions.max():.4g}).")
    for key in ("terminals", "timeouts"):
        flags = np.asarray(getattr(dataset, key))
        if not np.isin(flags, (0, 1)).all():
            raise DatasetError(f"{key} must be 0 or 1 in every row.")


# ---------------------------------------------------------------------------------------------- writing

def _write_atomically(path: str | os.PathLike, write) -> Path:
    """Call `write(temporary_path)` on a hidden file beside `path`, then rename it into place.

    An exception or interrupt half-way removes the temporary file, so `path` either holds a complete dataset
    or is untouched.
    """
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(descriptor)
    try:
        write(temporary)
        with open(temporary, "rb") as file:
            os.fsync(file.fileno())  # the bytes are on disk before the rename makes them visible
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _spec_json(spec: DatasetSpec) -> str:
    """The spec as the JSON text stored in our files."""
    return json.dumps(dataclasses.asdict(spec), sort_keys=True)


def save(dataset: Dataset, path: str | os.PathLike, spec: DatasetSpec) -> Path:
    """Validate and write `dataset` as a D4RL-format `.hdf5` (spec stored as an attribute), atomically."""
    import h5py

    validate(dataset, spec)

    def write(temporary: str) -> None:
        with h5py.File(temporary, "w") as file:
            file.attrs[SPEC_KEY] = _spec_json(spec)
            for key in Dataset._fields:
                array = np.asarray(getattr(dataset, key))
                # D4RL stores the episode flags as booleans; the rest as float32.
                dtype = bool if key in ("terminals", "timeouts") else np.float32
                file.create_dataset(key, data=array.astype(dtype))

    return _write_atomically(path, write)


def save_npz(dataset: Dataset, path: str | os.PathLike, spec: DatasetSpec) -> Path:
    """Validate and write `dataset` as an `.npz` with D4RL's keys (and the spec as JSON), atomically."""
    validate(dataset, spec)
    arrays = {key: np.asarray(getattr(dataset, key), dtype=np.float32) for key in Dataset._fields}

    def write(temporary: str) -> None:
        with open(temporary, "wb") as file:
            np.savez(file, **arrays, **{SPEC_KEY: np.array(_spec_json(spec))})

    return _write_atomically(path, write)


# ------------------------------------------------------------------------------------- scores and stats

def normalized_score(spec: DatasetSpec, returns) -> np.ndarray:
    """D4RL's normalised score 100 (R - R_random) / (R_expert - R_random), elementwise over `returns`."""
    returns = np.asarray(returns, dtype=np.float64)
    return 100.0 * (returns - spec.ref_min_return) / (spec.ref_max_return - spec.ref_min_return)


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


REWARD_ALGORITHMS = ("bc", "td3bc", "iql", "awac")
# CORL's published configs (configs/offline/<algo>/<env>/<dataset>.yaml) set normalize_reward: true only
# for IQL on hopper-medium-v2 and hopper-medium-replay-v2; every other algorithm and dataset (TD3+BC, AWAC,
# BC, and all maze2d) trains on the raw rewards. CORL subtracts 1 only for antmaze, which fluxrl does not ship.
CORL_REWARD_SCALED = {"iql": ("hopper-medium", "hopper-medium-replay")}


def reward_transform(spec: DatasetSpec, dataset: Dataset, algorithm: str) -> Dataset:
    """The dataset with CORL's reward convention for `algorithm` (bc, td3bc, iql, awac) on `spec` applied.

    CORL's algorithms/offline/iql.py, awac.py and td3_bc.py define `modify_reward` (rewards scaled by
    1000 / (max - min episode return) on locomotion) but apply it only when `normalize_reward` is set, which
    their published configs do for IQL on hopper-medium and hopper-medium-replay alone; any_percent_bc.py
    never changes rewards. Everything else is returned unchanged.
    """
    check_choice("algorithm", algorithm, REWARD_ALGORITHMS)
    if spec.name in CORL_REWARD_SCALED.get(algorithm, ()):
        return scale_rewards_by_return_range(dataset, spec.max_episode_steps)
    return dataset
