"""Atomic checkpoints of a state pytree: write to a temporary file, then rename over the old one."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import jax
import numpy as np

CHECKPOINT_FILE = "checkpoint.npz"
# Prefix of host-side entries (e.g. metrics accumulated since the last row) stored beside the state.
EXTRA_PREFIX = "extra/"


@contextlib.contextmanager
def atomic_file(path: Path, suffix: str = ".tmp") -> Iterator[str]:
    """A hidden temporary path beside `path` to write; on leaving the block it is synced to disk and renamed onto
    `path`, so a reader sees the old file or the whole new one; an exception or interrupt removes it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(handle)
    try:
        yield temporary
        with open(temporary, "rb") as file:
            os.fsync(file.fileno())  # the bytes are on disk before the rename makes them visible
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a reader sees either the old file or the whole new one."""
    with atomic_file(path) as temporary:
        Path(temporary).write_bytes(data)


def atomic_write_json(path: Path, payload: Any) -> None:
    """Write `payload` as indented JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(payload, indent=2, sort_keys=False) + "\n").encode())


def save(directory: Path, state: Any, iteration: int, extras: dict[str, np.ndarray] | None = None) -> Path:
    """Save every leaf of `state`, the iteration it was taken at and named host-side `extras`; returns the path."""
    import io

    leaves = [np.asarray(leaf) for leaf in jax.tree.leaves(state)]
    buffer = io.BytesIO()
    named = {f"{EXTRA_PREFIX}{name}": np.asarray(value) for name, value in (extras or {}).items()}
    np.savez(buffer, iteration=np.int64(iteration), **{f"leaf_{i}": leaf for i, leaf in enumerate(leaves)}, **named)
    path = Path(directory) / CHECKPOINT_FILE
    atomic_write_bytes(path, buffer.getvalue())
    return path


class CheckpointMismatch(ValueError):
    """The checkpoint cannot be read as the state this run expects."""


def load(directory: Path, template: Any) -> tuple[Any, int, dict[str, np.ndarray]]:
    """(state as host arrays, iteration, extras) from a checkpoint, with the tree structure of `template`;
    CheckpointMismatch when its leaves differ in number, shape or type, or the file is unreadable."""
    leaves, treedef = jax.tree.flatten(template)
    try:
        with np.load(Path(directory) / CHECKPOINT_FILE) as data:
            iteration = int(data["iteration"])
            names = [name for name in data.files if name.startswith("leaf_")]
            if len(names) != len(leaves):
                raise CheckpointMismatch(f"it holds {len(names)} arrays where this run's state has {len(leaves)}")
            loaded = [data[f"leaf_{i}"] for i in range(len(leaves))]
            extras = {name[len(EXTRA_PREFIX):]: data[name] for name in data.files if name.startswith(EXTRA_PREFIX)}
    except (OSError, KeyError, EOFError, ValueError) as error:
        if isinstance(error, CheckpointMismatch):
            raise
        raise CheckpointMismatch(f"it cannot be read ({error})") from None
    for index, (leaf, array) in enumerate(zip(leaves, loaded)):
        if tuple(leaf.shape) != array.shape or np.dtype(leaf.dtype) != array.dtype:
            raise CheckpointMismatch(f"array {index} is {array.dtype}{list(array.shape)} where this run's state "
                                     f"has {np.dtype(leaf.dtype)}{list(leaf.shape)}")
    return jax.tree.unflatten(treedef, loaded), iteration, extras
