"""Pictures of GFlowNet results."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fluxrl.envs.gflownet.configs import EnvConfig, HypergridConfig


def plot_grid_distribution(learned: np.ndarray, target: np.ndarray, height: int, path: Path, title: str = "") -> Path:
    """Save the learned and target distributions of a 2-D hypergrid side by side, on one colour scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    learned_grid = learned.reshape(height, height)
    target_grid = target.reshape(height, height)
    vmax = max(learned_grid.max(), target_grid.max())
    figure, axes = plt.subplots(1, 2, figsize=(9, 4.2), constrained_layout=True)
    for axis, grid, name in zip(axes, (learned_grid, target_grid), ("learned P_F (exact)", "target R(x) / Z")):
        image = axis.imshow(grid.T, origin="lower", cmap="viridis", vmin=0.0, vmax=vmax)
        axis.set_title(name)
        axis.set_xlabel("coordinate 0")
        axis.set_ylabel("coordinate 1")
    figure.colorbar(image, ax=axes, shrink=0.85, label="probability")
    if title:
        figure.suptitle(title)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)


def save_distribution_figure(env_config: EnvConfig, policy, env_params, out_dir: Path, method: str) -> None:
    """distribution.png in `out_dir`: learned vs target distribution, for a 2-D hypergrid (else nothing)."""
    if not (isinstance(env_config, HypergridConfig) and env_config.ndim == 2):
        return
    from fluxrl.gflownet.evaluation import terminal_distributions
    from fluxrl.gflownet.metrics import tv

    learned, target = terminal_distributions(env_config.build()[0], policy, env_params)
    height = env_config.height
    plot_grid_distribution(learned, target, height, Path(out_dir) / "distribution.png",
                           title=f"hypergrid {height}x{height}, {method}, first seed: exact TV "
                                 f"{tv(learned, target):.4f}")
