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
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

# The specs live in specs.py; they are re-exported here, where users load datasets.
from fluxrl.offline.specs import (FAMILIES, SPECS, DatasetError, DatasetSpec, _spec_for_env,  # noqa: F401
                                  _spec_from_minari_id, make_env, normalized_score, strip_version)


class Dataset(NamedTuple):
    """Transitions of an offline dataset, one row per transition (D4RL's keys)."""

    observations: np.ndarray  # [N, obs_dim] float32
    actions: np.ndarray  # [N, action_dim] float32
    rewards: np.ndarray  # [N] float32
    terminals: np.ndarray  # [N] float32, 1.0: the episode ended in a true terminal state (no bootstrap)
    timeouts: np.ndarray  # [N] float32, 1.0: the episode was cut by its time limit after this transition
    next_observations: np.ndarray  # [N, obs_dim] float32


# Ranks of each field: per-transition vectors are rank 2, per-transition scalars rank 1.
_RANKS = {"observations": 2, "actions": 2, "rewards": 1, "terminals": 1, "timeouts": 1, "next_observations": 2}
# Actions a hair outside the bounds are float noise (e.g. a clipped float64 stored as float32), not a bug.
ACTION_TOLERANCE = 1e-4
# File attribute (hdf5) or key (npz) holding the spec of a file we wrote, as JSON.
SPEC_KEY = "fluxrl_spec"
MINARI_DATA = Path("data") / "main_data.hdf5"
MINARI_METADATA = Path("data") / "metadata.json"


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
