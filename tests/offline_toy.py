"""A tiny offline dataset for tests: random Pendulum-shaped transitions."""

import numpy as np

from fluxrl.offline.datasets import Dataset


def pendulum_shaped(size: int = 64, seed: int = 0) -> Dataset:
    """`size` random transitions with Pendulum's shapes: observations [3], actions in +-2 [1], random rewards."""
    rng = np.random.default_rng(seed)
    return Dataset(rng.normal(size=(size, 3)).astype(np.float32), rng.uniform(-2, 2, (size, 1)).astype(np.float32),
                   rng.normal(size=size).astype(np.float32), np.zeros(size, np.float32), np.zeros(size, np.float32),
                   rng.normal(size=(size, 3)).astype(np.float32))
