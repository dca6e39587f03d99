"""`fluxrl demo`: the Quickstart, TB on a 32x32 hypergrid with the exact distance to the target printed.

Running the demo again replaces its own previous run in the same directory (the Quickstart may be run twice);
a directory holding anything else, another run or other files, is refused unless --overwrite.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from fluxrl.core.config import ConfigError, to_dict

# Iterations of the demo; a module constant so tests can shorten it.
ITERATIONS = 4000


@dataclass(frozen=True)
class Demo:
    """Train a GFlowNet (trajectory balance) on a 32x32 hypergrid, print the exact total variation to the target
    and save distribution.png (under two minutes on a laptop)."""

    out: Annotated[tyro.conf.Positional[str], tyro.conf.arg(metavar="DIR")] = "runs/demo"
    """Directory for the run (it may hold an earlier demo run, which is replaced)."""
    overwrite: bool = False
    """Replace whatever run is in OUT, even one that is not the demo's."""
    progress: bool = True
    """Show a progress bar."""


def demo_config():
    """The demo's GFlowNet config: TB, batch 16, epsilon 0.05 on the standard-reward 32x32 hypergrid."""
    from fluxrl.envs.gflownet.configs import HypergridConfig
    from fluxrl.gflownet.balance import BalanceConfig

    # A little uniform exploration keeps TB from collapsing onto the first corners it finds on this grid.
    return BalanceConfig(env=HypergridConfig(ndim=2, height=32), loss="tb", batch_size=16, epsilon=0.05)


def run_config(command: Demo):
    """The demo's run settings: one seed, ITERATIONS iterations, into `command.out`."""
    from fluxrl.core.runner import RunConfig

    return RunConfig(iterations=ITERATIONS, seed=0, num_seeds=1, out=command.out, log_every=100,
                     eval_every=min(1000, ITERATIONS), checkpoint_every=ITERATIONS,
                     overwrite=command.overwrite or holds_only_a_demo_run(Path(command.out)),
                     progress=command.progress)


def check(command: Demo) -> None:
    """ConfigError unless the demo may write into its directory; writes nothing."""
    from fluxrl.core.rundir import prepare_out_dir

    path = Path(command.out)
    if path.is_dir() and not command.overwrite and not holds_only_a_demo_run(path):
        others = sorted(entry.name for entry in path.iterdir() if entry.name not in _own_files())
        if (path / "config.json").exists() and not _is_demo_run(path):
            raise ConfigError(f"{command.out} holds another run; pass --overwrite to replace it, or name another "
                              f"directory (`fluxrl demo DIR`).")
        if others:
            raise ConfigError(f"{command.out} holds other files ({', '.join(others[:3])}); pass --overwrite to "
                              f"write the demo there anyway, or name another directory (`fluxrl demo DIR`).")
    prepare_out_dir(command.out, overwrite=True)


def holds_only_a_demo_run(path: Path) -> bool:
    """Whether `path` holds the demo's own run (or nothing) and no other file."""
    entries = list(path.iterdir()) if path.is_dir() else []
    return not entries or (_is_demo_run(path) and all(entry.name in _own_files() for entry in entries))


def _is_demo_run(path: Path) -> bool:
    from fluxrl.core.rundir import CONFIG_FILE
    from fluxrl.gflownet.balance import ALGORITHM

    try:
        stored = json.loads((path / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(stored, dict) and stored.get("algorithm") == ALGORITHM.name
            and stored.get("config") == to_dict(demo_config()))


def _own_files() -> set[str]:
    """The names of what a demo run writes into its directory."""
    from fluxrl.core.rundir import CORE_FILES, TENSORBOARD_DIR
    from fluxrl.gflownet.balance import ALGORITHM

    return set(CORE_FILES) | set(ALGORITHM.artifacts) | {TENSORBOARD_DIR}


def execute(command: Demo) -> int:
    """Train the demo, print the exact TV before and after; exit status 0."""
    from fluxrl.core.runner import run
    from fluxrl.gflownet.balance import ALGORITHM

    config, settings = demo_config(), run_config(command)
    height = config.env.height
    print(f"fluxrl demo: trajectory balance on a {height}x{height} hypergrid (standard reward), "
          f"{settings.iterations} iterations, batch {config.batch_size}, epsilon {config.epsilon}")
    summary = run(ALGORITHM, config, settings).summary
    print(f"exact total variation to the target: {summary['tv']:.4f} (started at {_first_tv(command.out):.4f}); "
          f"{summary['iterations_per_second']:.0f} iterations/s")
    print(f"picture of the learned vs target distribution: {command.out}/distribution.png")
    return 0


def _first_tv(out: str) -> float:
    with (Path(out) / "metrics.csv").open() as file:
        return float(next(csv.DictReader(file))["tv"])
