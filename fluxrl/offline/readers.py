"""Reading dataset files: D4RL-format `.hdf5`, `.npz` with D4RL's keys, and local Minari dataset directories.

Every reader returns (Dataset, metadata); a file that cannot be read is one `DatasetError` naming it.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from fluxrl.offline.specs import Dataset, DatasetError

# File attribute (hdf5) or key (npz) holding the spec of a file we wrote, as JSON.
SPEC_KEY = "fluxrl_spec"
MINARI_DATA = Path("data") / "main_data.hdf5"
MINARI_METADATA = Path("data") / "metadata.json"

HDF5_SUFFIXES = (".hdf5", ".h5")
SUFFIXES = HDF5_SUFFIXES + (".npz",)
# What h5py, numpy and zipfile raise on a truncated, corrupt or foreign file.
_READ_ERRORS = (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, RuntimeError)


def _unreadable(path: Path, what: str = "file") -> DatasetError:
    """The one-sentence error for a file that h5py / numpy cannot read."""
    return DatasetError(f"cannot read {path}: the {what} is truncated, corrupt or not in the expected format.")


def read_metadata(path: Path) -> dict[str, Any]:
    """Metadata of a dataset file or Minari directory: our stored spec, or Minari's metadata.json."""
    if path.is_dir():
        metadata_path = _minari_root(path) / MINARI_METADATA
        try:
            return json.loads(metadata_path.read_text())
        except FileNotFoundError:
            raise DatasetError(f"{path} is not a Minari dataset directory: {MINARI_METADATA} is missing.") from None
        except (OSError, ValueError):
            raise _unreadable(metadata_path) from None
    if path.suffix in HDF5_SUFFIXES:
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


def read_hdf5(path: Path) -> tuple[Dataset, dict[str, Any]]:
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


def read_npz(path: Path) -> tuple[Dataset, dict[str, Any]]:
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


def read_minari(path: Path) -> tuple[Dataset, dict[str, Any]]:
    """A local Minari directory: data/main_data.hdf5 with groups episode_<i> (observations of length T+1)."""
    import h5py

    root = _minari_root(path)
    metadata = read_metadata(root)
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
