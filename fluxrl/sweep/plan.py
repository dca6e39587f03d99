"""A sweep's plan: the grid of swept values, split into trials and, inside each trial, a hyperparameter axis.

Every combination of the swept values is a point: an algorithm, its config and a run config. Points whose configs
differ only in traced fields (`traced.py`) are one trial, the fields that differ its axis; any other difference
(a loss, a size, an environment, a run option) puts points in different trials.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple

from fluxrl.core.config import ConfigError, to_dict
from fluxrl.core.hyper import HyperAxis, get_path
from fluxrl.core.runner import Algorithm, RunConfig
from fluxrl.sweep.traced import traced_paths

TRIALS_DIR = "trials"


@dataclass(frozen=True)
class Swept:
    """One swept option and its values, as written on the command line."""

    name: str
    values: tuple[str, ...]


def parse_swept(text: str) -> Swept:
    """`NAME=V1,V2,...` as a Swept; ConfigError for a malformed one."""
    name, equals, values = text.partition("=")
    name, parts = name.strip().lstrip("-"), tuple(value.strip() for value in values.split(","))
    if not equals or not name or "" in parts:
        raise ConfigError(f"--sweep {text!r} must be NAME=V1,V2,... (an option and its values), e.g. lr=1e-3,3e-4.")
    if len(set(parts)) != len(parts):
        raise ConfigError(f"--sweep {name} repeats a value: {','.join(parts)}.")
    return Swept(name, parts)


def grid(swept: list[Swept]) -> list[dict[str, str]]:
    """Every combination of the swept values, the first option varying slowest."""
    names = [option.name for option in swept]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"--sweep {repeated[0]} is given twice; give all its values at once.")
    return [dict(zip(names, values)) for values in itertools.product(*(option.values for option in swept))]


class Point(NamedTuple):
    """One combination of swept values and the run it describes."""

    values: dict[str, str]
    algorithm: Algorithm
    config: Any
    run: RunConfig
    command: Any = None  # the family's `train` command it was parsed from (None: built in Python)
    data: Callable | None = None  # (command, algorithm, config) -> the run's data: the family's reader


@dataclass(frozen=True)
class Trial:
    """One fluxrl run of a sweep: its points share every static value; `axis` holds the traced ones."""

    name: str
    algorithm: Algorithm
    config: Any
    run: RunConfig  # run.out is the trial's own directory
    axis: dict[str, tuple] | None  # config path -> one value per member; None: a plain run of one point
    points: tuple[dict[str, str], ...]  # the swept values of each member (of the one point without an axis)
    members: tuple[str, ...]  # each member's directory name under run.out; () without an axis
    command: Any = None  # the family's `train` command of the first point (its data are read through it)
    data: Callable | None = None  # (command, algorithm, config) -> the run's data, or None


def label(values: dict[str, str]) -> str:
    """`name=value,...` of swept values."""
    return ",".join(f"{name}={value}" for name, value in values.items())


def _flat(value: Any, path: str = "") -> dict[str, str]:
    """Every leaf of a nested config as {dotted path: repr}, with each nested config's class as a leaf."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        flat = {f"{path}<class>": type(value).__qualname__}
        for field in dataclasses.fields(value):
            flat.update(_flat(getattr(value, field.name), f"{path}{field.name}."))
        return flat
    return {path[:-1]: repr(value)}


def plan(points: list[Point], out: Path, traceable: Callable[[Any], set[str]] = traced_paths) -> list[Trial]:
    """The trials of a sweep's points, each with run.out under out/trials/ (see the module docstring)."""
    flats = [_flat(point.config) for point in points]
    paths = set().union(*flats)
    varying = {path for path in paths if len({flat.get(path) for flat in flats}) > 1}
    groups: dict[tuple, list[int]] = {}
    for index, point in enumerate(points):
        axis_paths = varying & traceable(point.config)
        run = {**to_dict(point.run), "out": None}
        key = (point.algorithm.name, repr(sorted(run.items())),
               tuple(sorted((k, v) for k, v in flats[index].items() if k not in axis_paths)))
        groups.setdefault(key, []).append(index)
    trials, names = [], set()
    for members in groups.values():
        first = points[members[0]]
        axis_paths = sorted(path for path in varying & traceable(first.config)
                            if len({flats[i][path] for i in members}) > 1)
        if len(members) > 1 and not axis_paths:
            raise ConfigError(f"{label(first.values)} and {label(points[members[1]].values)} describe the same run.")
        constant = {name: value for name, value in first.values.items()
                    if all(points[i].values[name] == value for i in members)}
        name = (label(constant) or "sweep").replace("/", "_")
        name = name if name not in names else f"{name}-{len(trials)}"
        names.add(name)
        run = dataclasses.replace(first.run, out=str(Path(out) / TRIALS_DIR / name))
        axis = {path: tuple(get_path(points[i].config, path) for i in members) for path in axis_paths} or None
        trials.append(Trial(name, first.algorithm, first.config, run, axis,
                            tuple(points[i].values for i in members),
                            HyperAxis(first.config, axis).names if axis else (), first.command, first.data))
    return trials

