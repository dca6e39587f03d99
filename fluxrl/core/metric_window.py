"""Training metrics between two metric rows: each row averages every iteration since the previous row."""

from __future__ import annotations

import numpy as np

_COUNT = "__iterations__"


class MetricWindow:
    """Per-seed running sums of chunk metrics [seeds, iterations] (latest values for counters)."""

    def __init__(self, counters: tuple[str, ...]):
        self.counters = counters
        self.sums: dict[str, np.ndarray] = {}
        self.count = 0

    def add(self, chunk: dict[str, np.ndarray]) -> None:
        """Fold in a chunk's metrics, each [seeds, iterations]."""
        for name, values in chunk.items():
            values = np.asarray(values, np.float64)
            if name in self.counters:
                self.sums[name] = values[:, -1]
            else:
                self.sums[name] = self.sums.get(name, 0.0) + values.sum(axis=1)
        self.count += next(iter(chunk.values())).shape[1] if chunk else 0

    def take(self) -> dict[str, np.ndarray]:
        """The per-seed means (latest values for counters) since the last take, and a fresh window."""
        means = {name: values if name in self.counters else values / self.count
                 for name, values in self.sums.items()}
        self.sums, self.count = {}, 0
        return means

    def extras(self) -> dict[str, np.ndarray]:
        """The window as named arrays, stored in a checkpoint so a resumed run writes the same rows."""
        return {**self.sums, _COUNT: np.int64(self.count)}

    def restore(self, extras: dict[str, np.ndarray]) -> None:
        """The window saved by `extras`."""
        self.sums = {name: np.asarray(value) for name, value in extras.items() if name != _COUNT}
        self.count = int(extras.get(_COUNT, 0))


def first_non_finite(metrics: dict[str, np.ndarray], first_iteration: int) -> str | None:
    """A message for the earliest NaN/inf in chunk metrics [seeds, iterations], or None."""
    worst = None
    for name, values in metrics.items():
        bad = ~np.isfinite(np.asarray(values, np.float64))
        if bad.any():
            where = np.argwhere(bad)
            seed, step = where[np.argmin(where[:, 1])]
            if worst is None or step < worst[0]:
                worst = (step, name, seed, values[seed, step])
    if worst is None:
        return None
    step, name, seed, value = worst
    # Resuming would replay the same NaN bit for bit: everything random lives in the checkpointed state.
    return (f"metric '{name}' became {value} at iteration {first_iteration + step} (seed index {seed}); "
            f"stopping. Resuming would repeat it exactly: start a new run with a smaller learning rate "
            f"or another --seed.")
