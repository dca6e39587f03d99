"""`fluxrl data make NAME`: make a D4RL-style dataset locally (nothing is downloaded) and print where it is."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from fluxrl.core.config import ConfigError, check_range
from fluxrl.offline import datasets, generate


@dataclass(frozen=True)
class DataMake:
    """Make a D4RL-style dataset into --data-dir, deterministic given --seed; a finished one is reused.
    Names: maze2d-{umaze,medium,large}[-dense],
    {halfcheetah,hopper,walker2d}-{random,medium,medium-replay,medium-expert,expert}."""

    name: Annotated[tyro.conf.Positional[str], tyro.conf.arg(metavar="NAME")]
    """Dataset to make, e.g. maze2d-umaze or halfcheetah-medium-replay."""
    data_dir: str = dataclasses.field(default_factory=lambda: str(datasets.default_data_dir()))
    """Directory the dataset is written to, as NAME.hdf5 ($FLUXRL_DATA_DIR, else the user's cache directory)."""
    size: int | None = None
    """Number of transitions (default: D4RL's size for the name)."""
    seed: int = 0
    """Seed of everything random in the making."""
    overwrite: bool = False
    """Make the dataset again even if NAME.hdf5 is already there."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self):
        if self.size is not None:
            check_range("size", self.size, 1)
        check_range("seed", self.seed, 0)


def check(command: DataMake) -> None:
    """ConfigError unless the name is one fluxrl makes and --data-dir can be written; writes nothing."""
    generate.check_name(command.name)
    path = Path(command.data_dir).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--data-dir {command.data_dir} is a file, not a directory.")
    existing = next((parent for parent in (path, *path.parents) if parent.exists()), Path("."))
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"--data-dir {command.data_dir} cannot be written ({existing} is not writable).")


def execute(command: DataMake) -> int:
    """Make (or reuse) the dataset and print where it is and how it was made; exit status 0."""
    reused = generate.path_for(command.name, command.data_dir).exists() and not command.overwrite
    path = generate.make(command.name, command.data_dir, size=command.size, seed=command.seed,
                         progress=command.progress, overwrite=command.overwrite)
    made = generate.info(path)
    print(describe(command.name, made, reused))
    print(f"{'reusing' if reused else 'written to'} {path}")
    return 0


def describe(name: str, made: dict, reused: bool) -> str:
    """One line on a made dataset: size, seed, time, and the maze2d controller's success rate."""
    if not made:
        return f"{name}: a file fluxrl did not make; used as it is (pass --overwrite to make it instead)."
    line = f"{name} (D4RL-style, seed {made['seed']}): {made['size']:,} transitions"
    line += f", made in {made['wall_seconds']:.0f} s ({made['transitions_per_second']:,.0f} transitions/s)"
    if "success_rate" in made:
        targets = made["targets_reached"] + made["targets_given_up"]
        line += f"; the controller reached {made['success_rate']:.1%} of {targets:,} targets"
    return line + (" (made earlier; --overwrite makes it again)" if reused else "") + "."
