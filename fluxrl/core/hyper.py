"""A hyperparameter axis: several values of a config's traced fields, trained in one program next to the seeds.

A field can be traced when the algorithm uses it only in arithmetic inside jit (a learning rate, a coefficient,
lambda, alpha). The runner then trains every (member, seed) pair as one run of the same compiled program: the
runs are split over the devices like seeds (see `devices.py`), each run's config holding a tracer in that field
whose value is the run's own input. A traced config is built without its `__post_init__` (a range check cannot
compare a tracer); every member's concrete config is built, and so validated, first, so a bad value is still
refused with the field's own message.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

import jax
import numpy as np

from fluxrl.core.config import ConfigError

# What tracing raises when a swept field is used where the program needs a Python value (an `if`, a shape, an
# optimizer built from a float): the field cannot be an axis and must be swept as separate runs instead.
TRACING_ERRORS = (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError,
                  jax.errors.TracerIntegerConversionError)


def get_path(config: Any, path: str) -> Any:
    """The value of a dotted field path ("lr", "explore.lam") of a nested config dataclass."""
    value = config
    for name in path.split("."):
        if not dataclasses.is_dataclass(value) or name not in {f.name for f in dataclasses.fields(value)}:
            raise ConfigError(f"{path} is not a field of {type(config).__name__}.")
        value = getattr(value, name)
    return value


def replace_path(config: Any, path: str, value: Any) -> Any:
    """A copy of `config` with the field at `path` set to `value`, validated by every config on the path."""
    name, _, rest = path.partition(".")
    child = replace_path(getattr(config, name), rest, value) if rest else value
    return dataclasses.replace(config, **{name: child})


def with_values(config: Any, values: Mapping[str, Any]) -> Any:
    """A copy of `config` with fields set to (possibly traced) `values`, validation skipped: every member's
    concrete config has been validated already."""
    for path, value in values.items():
        config = _set_unchecked(config, path.split("."), value)
    return config


def _set_unchecked(node: Any, names: list[str], value: Any) -> Any:
    changed = copy.copy(node)  # a frozen dataclass copied without calling __init__ / __post_init__
    child = value if len(names) == 1 else _set_unchecked(getattr(node, names[0]), names[1:], value)
    object.__setattr__(changed, names[0], child)
    return changed


def format_value(value: Any) -> str:
    """A swept value as written in a member's name: repr for floats (exact and short), str otherwise."""
    return repr(value) if isinstance(value, float) else str(value)


class HyperAxis:
    """Members of a run: each sets the traced fields `paths` of a base config to its own values."""

    def __init__(self, config: Any, values: Mapping[str, Sequence[Any]]):
        if not values:
            raise ConfigError("a hyperparameter axis needs at least one field.")
        sizes = {len(v) for v in values.values()}
        if len(sizes) != 1 or 0 in sizes:
            raise ConfigError("every field of a hyperparameter axis needs the same number (>= 1) of values.")
        self.paths = tuple(values)
        self.size = sizes.pop()
        self.values = {path: tuple(vals) for path, vals in values.items()}
        for path, vals in self.values.items():
            current = get_path(config, path)
            if isinstance(current, bool) or not isinstance(current, (int, float)) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
                raise ConfigError(f"{path} cannot be a hyperparameter axis: only numeric fields can, "
                                  f"got {current!r} and values {list(vals)}.")
        self.configs = tuple(self._member_config(config, index) for index in range(self.size))
        self.names = tuple(",".join(f"{path}={format_value(self.values[path][index])}" for path in self.paths)
                           for index in range(self.size))
        if len(set(self.names)) != self.size:
            raise ConfigError(f"the hyperparameter axis repeats a member: {', '.join(self.names)}.")
        self.arrays = {path: np.asarray(vals, np.float32 if isinstance(get_path(config, path), float) else np.int32)
                       for path, vals in self.values.items()}

    def _member_config(self, config: Any, index: int) -> Any:
        for path in self.paths:
            value = self.values[path][index]
            config = replace_path(config, path, float(value) if isinstance(get_path(config, path), float) else value)
        return config

    def traced_error(self, algorithm_name: str) -> ConfigError:
        """The refusal when tracing shows that a field of the axis must stay a Python value."""
        return ConfigError(f"{', '.join(self.paths)} cannot be a hyperparameter axis of {algorithm_name}: it "
                           f"decides the compiled program (a branch, a shape or an optimizer built from it); "
                           f"run its values as separate runs.")

    def describe(self) -> dict:
        """The axis as stored in config.json: each field's values, and the members' directory names."""
        return {"values": {path: list(vals) for path, vals in self.values.items()}, "members": list(self.names)}


def run_values(axis: HyperAxis | None, num_seeds: int) -> dict[str, np.ndarray]:
    """Each run's values of the axis's fields, [members * num_seeds] member after member ({} without an axis)."""
    if axis is None:
        return {}
    return {path: np.repeat(values, num_seeds) for path, values in axis.arrays.items()}


class LogGroup(NamedTuple):
    """Seeds that log into one directory: a whole run, or one member of its axis."""

    name: str | None  # the member's name; None for a run without an axis
    out: Path
    config: Any


def log_groups(out: Path, config: Any, axis: HyperAxis | None) -> list[LogGroup]:
    """Where a run logs: `out` itself, or out/<member name> for each member of its axis, member by member."""
    if axis is None:
        return [LogGroup(None, out, config)]
    return [LogGroup(name, out / name, member) for name, member in zip(axis.names, axis.configs)]
