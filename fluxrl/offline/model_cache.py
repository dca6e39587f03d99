"""The cache of models pre-trained before an offline run (CNF's flows, PLAS's VAEs): one file per dataset, what
shapes the model and seed, written atomically; a missing, unreadable or non-finite file is trained anew and replaced.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any, Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from fluxrl.core.checkpoint import atomic_write_bytes, atomic_write_json
from fluxrl.offline.common import OfflineData


def data_fingerprint(data: OfflineData) -> dict:
    """What of a dataset a pre-trained model depends on besides its size: shapes, action bound and normalisation
    (a model conditioned on differently normalised states would decode other actions)."""
    return {"obs_dim": data.obs_dim, "action_dim": data.action_dim, "max_action": float(data.max_action),
            "obs_mean": np.asarray(data.obs_mean, np.float32).tolist(),
            "obs_std": np.asarray(data.obs_std, np.float32).tolist()}


def model_path(directory: str | Path, prefix: str, dataset_id: str, fingerprint: dict, seed: int) -> Path:
    """The file of one pre-trained model: the dataset's name, a hash of `fingerprint` and the seed."""
    digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(dataset_id))
    return Path(directory).expanduser() / f"{prefix}{name}-{digest}-seed{seed}.eqx"


def load(path: Path, template: Any) -> Any | None:
    """The model saved at `path` (arrays shaped as `template`'s), or None when missing, unreadable or not finite."""
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as file:
            model = eqx.tree_deserialise_leaves(file, template)
    except (OSError, ValueError, EOFError, RuntimeError, TypeError):
        return None
    finite = all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(eqx.filter(model, eqx.is_array)))
    return model if finite else None


def load_or_train(path: Path, template: Any, train: Callable[[], tuple[Any, dict | None]]) -> Any:
    """The model cached at `path`, else `train()`'s model, saved there atomically with its record (a JSON file
    beside it, when `train` returns one)."""
    model = load(path, template)
    if model is not None:
        return model
    model, record = train()
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, model)
    atomic_write_bytes(path, buffer.getvalue())
    if record is not None:
        atomic_write_json(path.with_suffix(".json"), record)
    return model
