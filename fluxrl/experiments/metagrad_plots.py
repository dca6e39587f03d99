"""Figures of the meta-gradient reproduction: the estimators' relative variances and the meta-parameters over
training."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fluxrl.experiments.common import curve
from fluxrl.experiments.metagrad import HORIZONS


def plot_variance(rows: dict[str, list[dict]], path: Path) -> Path:
    """Per K: the three estimators' relative variances over training on the K-step and mixed runs' states
    (geometric mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(HORIZONS), figsize=(5 * len(HORIZONS), 3.8), constrained_layout=True,
                               squeeze=False)
    for axis, k in zip(axes[0], HORIZONS):
        for name in (f"{k}-step", f"mixed {k}"):
            if name not in rows:
                continue
            for estimator, style in (("kstep", "-"), ("uniform", "--"), ("geometric", ":")):
                x, values = curve(rows[name], f"meta_grad_relative_variance_{estimator}")
                axis.plot(x, np.exp(np.log(np.maximum(values, 1e-30)).mean(axis=0)), style,
                          label=f"{estimator} at {name}'s states")
        axis.set(yscale="log", xlabel="iteration", ylabel="trace(Cov) / |mean|^2", title=f"K = {k}")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.suptitle("Relative variance of the meta-gradient at fixed (theta, eta): geometric mean over seeds",
                    fontsize=10)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_meta_parameters(rows: dict[str, list[dict]], path: Path) -> Path:
    """gamma and lambda against the number of meta-updates (mean over seeds, band min..max)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10.4, 4), constrained_layout=True)
    for axis, metric in zip(axes, ("gamma", "lambda")):
        for method, method_rows in rows.items():
            if method == "A2C fixed gamma":
                continue
            _, counts = curve(method_rows, "meta_updates")
            _, values = curve(method_rows, metric)
            line, = axis.plot(counts.mean(axis=0), values.mean(axis=0), label=method)
            axis.fill_between(counts.mean(axis=0), values.min(axis=0), values.max(axis=0), color=line.get_color(),
                              alpha=0.15)
        axis.set(xscale="log", xlabel="meta-updates", ylabel=metric, title=f"{metric} against meta-updates")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
