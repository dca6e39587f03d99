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
from pathlib import Path
from typing import Any

import numpy as np

from fluxrl.offline.readers import HDF5_SUFFIXES, SPEC_KEY, SUFFIXES, read_hdf5, read_metadata, read_minari, read_npz
# The dataset type and the specs live in specs.py; they are re-exported here, where users load datasets.
from fluxrl.offline.specs import (FAMILIES, SPECS, Dataset, DatasetError, DatasetSpec, _spec_for_env,  # noqa: F401
                                  _spec_from_minari_id, make_env, normalized_score, strip_version)


# Ranks of each field: per-transition vectors are rank 2, per-transition scalars rank 1.
_RANKS = {"observations": 2, "actions": 2, "rewards": 1, "terminals": 1, "timeouts": 1, "next_observations": 2}
# Actions a hair outside the bounds are float noise (e.g. a clipped float64 stored as float32), not a bug.
ACTION_TOLERANCE = 1e-4


def spec_for(name_or_path: str | os.PathLike, env: str | None = None) -> DatasetSpec:
    """The spec of a dataset: from `env` if given, a known name, our files' metadata, or a D4RL file name."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if env is not None:
        spec = _spec_for_env(env, _name_of_file(path))
        if spec is None:
            raise DatasetError(f"the spec of data from {env} (outside D4RL's families) is read off the data: load "
                               "the dataset with fluxrl.offline.datasets.load(path, env=...).")
        return spec
    if not path.exists() and strip_version(text) in SPECS:
        return SPECS[strip_version(text)]
    metadata = read_metadata(path) if path.exists() else {}
    return _spec_from_metadata(path, metadata) or _spec_from_file_name(path)


def _name_of_file(path: Path) -> str:
    """The dataset name a file name suggests: halfcheetah-medium-replay-v2.hdf5 -> halfcheetah-medium-replay."""
    return strip_version(path.name.removesuffix(path.suffix) if path.suffix in SUFFIXES else path.name)


def _spec_from_file_name(path: Path) -> DatasetSpec:
    """The spec of a D4RL-named file, or a DatasetError asking for the environment."""
    name = _name_of_file(path)
    if name in SPECS:
        return SPECS[name]
    raise DatasetError(f"cannot tell which environment {path} comes from; pass the environment "
                       f"(a dataset name such as halfcheetah-medium, or a Gymnasium id such as HalfCheetah-v4).")


def _spec_from_metadata(path: Path, metadata: dict[str, Any], dataset: Dataset | None = None) -> DatasetSpec | None:
    """The spec stored in our own files, or read from a Minari directory's metadata (a dataset of any Gymnasium
    environment, with Minari's reference scores where it has them); None when absent."""
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
        known = _spec_from_minari_id(str(metadata["dataset_id"]), env_id)
        if known is not None or env_id is None or dataset is None:
            return known
        name = strip_version(str(metadata["dataset_id"]).replace("/", "-"))
        return _generic_spec(name, env_id, dataset, metadata.get("ref_min_score"), metadata.get("ref_max_score"))
    return None


def _generic_spec(name: str, env: str, dataset: Dataset, ref_min=None, ref_max=None) -> DatasetSpec:
    """The spec of `dataset` from Gymnasium environment `env` (or none), its sizes read off the data."""
    from fluxrl.offline.specs import generic_spec

    references = {} if ref_min is None or ref_max is None else dict(ref_min_return=float(ref_min),
                                                                     ref_max_return=float(ref_max))
    actions = np.asarray(dataset.actions)
    bounds = {} if env != "none" else dict(action_low=float(min(actions.min(), -1.0)),
                                           action_high=float(max(actions.max(), 1.0)))
    return generic_spec(name, env, int(np.shape(dataset.observations)[1]), int(np.shape(dataset.actions)[1]),
                        **bounds, **references)


def default_data_dir() -> Path:
    """Where `fluxrl data make` writes: $FLUXRL_DATA_DIR, else $XDG_CACHE_HOME/fluxrl/datasets, else ~/.cache."""
    if os.environ.get("FLUXRL_DATA_DIR"):
        return Path(os.environ["FLUXRL_DATA_DIR"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(cache) / "fluxrl" / "datasets"


def _resolve_path(name_or_path: str | os.PathLike, data_dir: str | os.PathLike | None) -> Path:
    """The file or directory a name or path refers to; a bare name is `<data_dir>/<name>.hdf5`."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.exists():
        return path
    looks_like_path = os.sep in text or "/" in text or path.suffix in SUFFIXES
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

    `env` (a dataset name, a family, any Gymnasium id, or "none") says which environment the data comes from when
    the file does not tell; with "none" the data trains without an environment (offline metrics only).
    """
    path = _resolve_path(name_or_path, data_dir)
    if path.is_dir():
        dataset, metadata = read_minari(path)
    elif path.suffix in HDF5_SUFFIXES:
        dataset, metadata = read_hdf5(path)
    elif path.suffix == ".npz":
        dataset, metadata = read_npz(path)
    else:
        raise DatasetError(f"{path} is not a dataset: expected a .hdf5 or .npz file or a Minari directory.")
    if env is not None:
        spec = _spec_for_env(env, _name_of_file(path)) or _generic_spec(_name_of_file(path), env, dataset)
    else:
        spec = _spec_from_metadata(path, metadata, dataset) or _spec_from_file_name(path)
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
    """Call `write(temporary_path)` on a hidden file beside `path`, then sync it and rename it into place: an
    exception or interrupt half-way removes the temporary file, so `path` holds a complete dataset or is
    untouched."""
    from fluxrl.core.checkpoint import atomic_file

    path = Path(path).expanduser()
    with atomic_file(path) as temporary:
        write(temporary)
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
