"""Figures of on-policy runs: a policy's action samples at the grid world's start cell (a saddle state)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import jax
import numpy as np

from fluxrl.envs.control import gridworld
from fluxrl.onpolicy import gridworld_eval

SAMPLES = 1000
SHOWN_SEEDS = 5  # columns of the figure at most
COLOURS = ("tab:blue", "tab:orange", "lightgray")  # heading to goal side 0, side 1, neither


def policy_of(config: Any):
    """The rollout policy builder (actor -> Sample) of a PPO or FPO config."""
    from fluxrl.onpolicy import fpo, ppo

    return fpo.sample(config) if isinstance(config, fpo.FPOConfig) else ppo.sample


def start_actions(config: Any, state: Any, layout: str, key: jax.Array, samples: int = SAMPLES):
    """(env actions [samples, 2], heading of each: 0, 1 or -1) of one seed's policy at the layout's start cell."""
    start = gridworld.start_position(layout)
    cells, headings = gridworld_eval.saddle_headings(layout)
    row = int(np.flatnonzero((cells == start).all(axis=1))[0])
    stats = state.obs_stats if config.normalize_observations else None
    actions = gridworld_eval.saddle_actions(policy_of(config)(state.actor), stats, start[None], key, samples)[0]
    moves = np.asarray(gridworld_eval.move_index(actions))
    return np.asarray(actions), headings[row][moves]


def plot_start_actions(runs: dict[str, tuple[Any, Any]], layout: str, path: str | Path, seeds: Sequence[int]) -> None:
    """Write a figure: one row per method (name -> (config, seed-batched state)), one column per seed (at most 5),
    each the scatter of 1,000 action samples at the start cell coloured by the goal they head to."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = min(len(seeds), SHOWN_SEEDS)
    figure = Figure(figsize=(2.6 * columns, 2.7 * len(runs)), constrained_layout=True)
    FigureCanvasAgg(figure)
    axes = np.asarray(figure.subplots(len(runs), columns, squeeze=False))
    start = tuple(int(v) for v in gridworld.start_position(layout))
    for row, (name, (config, state)) in enumerate(runs.items()):
        for column in range(columns):
            seed_state = jax.tree.map(lambda x: x[column], state)
            actions, heading = start_actions(config, seed_state, layout, jax.random.PRNGKey(seeds[column]))
            ax = axes[row, column]
            ax.scatter(actions[:, 0], actions[:, 1], s=3, alpha=0.5,
                       c=[COLOURS[h] for h in heading], rasterized=True)
            for edge in (-0.5, 0.5):  # where the environment's rounding changes the move
                ax.axhline(edge, color="k", lw=0.5, ls=":")
                ax.axvline(edge, color="k", lw=0.5, ls=":")
            # Raw (unsquashed) actions can leave [-1, 1]; the environment clips them.
            limit = max(1.05, 1.05 * float(np.quantile(np.abs(actions), 0.99)))
            ax.set(xlim=(-limit, limit), ylim=(-limit, limit), aspect="equal")
            shares = [np.mean(heading == side) for side in (0, 1)]
            ax.set_title(f"{name}, seed {seeds[column]}: {shares[0]:.0%} / {shares[1]:.0%}", fontsize=9)
        axes[row, 0].set_ylabel("action y")
    for ax in axes[-1]:
        ax.set_xlabel("action x")
    figure.suptitle(f"{layout}: {SAMPLES:,} actions at the start cell {start}\n(colour: the goal they head to; "
                    f"title: the shares heading to either goal)", fontsize=9)
    figure.savefig(path, dpi=110)
