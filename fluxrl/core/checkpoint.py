"""Atomic checkpoints of a state pytree: write to a temporary file, then rename over the old one."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import jax
import numpy as np

CHECKPOINT_FILE = "checkpoint.npz"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a reader sees either the old file or the whole new one."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, payload: Any) -> None:
    """Write `payload` as indented JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(payload, indent=2, sort_keys=False) + "\n").encode())


def save(directory: Path, state: Any, iteration: int) -> Path:
    """Save every leaf of `state` and the iteration it was taken at; returns the checkpoint's path."""
    import io

    leaves = [np.asarray(leaf) for leaf in jax.tree.leaves(state)]
    buffer = io.BytesIO()
    np.savez(buffer, iteration=np.int64(iteration), **{f"leaf_{i}": leaf for i, leaf in enumerate(leaves)})
    path = Path(directory) / CHECKPOINT_FILE
    atomic_write_bytes(path, buffer.getvalue())
    return path


def load(directory: Path, template: Any) -> tuple[Any, int]:
    """(state, iteration) from a checkpoint, with the tree structure of `template` (shapes are checked)."""
    leaves, treedef = jax.tree.flatten(template)
    with np.load(Path(directory) / CHECKPOINT_FILE) as data:
        iteration = int(data["iteration"])
        loaded = [data[f"leaf_{i}"] for i in range(len(leaves))]
        if len(data.files) != len(leaves) + 1:
            raise ValueError("the checkpoint does not match this run's state layout")
    for leaf, array in zip(leaves, loaded):
        if tuple(leaf.shape) != array.shape or np.dtype(leaf.dtype) != array.dtype:
            raise ValueError("the checkpoint does not match this run's state layout")
    return jax.tree.unflatten(treedef, [jax.numpy.asarray(a) for a in loaded]), iteration
