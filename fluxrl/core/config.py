"""Config validation shared by every algorithm: one error type, one sentence per mistake."""

from __future__ import annotations

import dataclasses
import json
from typing import Any


class ConfigError(Exception):
    """A user-facing mistake in a config or command line; its message is one sentence for people."""


def check_range(name: str, value: float, low: float | None = None, high: float | None = None,
                *, low_open: bool = False, high_open: bool = False) -> None:
    """Raise ConfigError naming `name` unless low <= value <= high (strict where `low_open` / `high_open`)."""
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        lower = "" if low is None else (f"> {low}" if low_open else f">= {low}")
        upper = "" if high is None else (f"< {high}" if high_open else f"<= {high}")
        allowed = " and ".join(part for part in (lower, upper) if part)
        raise ConfigError(f"{name} must be {allowed}, got {value}.")


def check_choice(name: str, value: Any, choices: tuple) -> None:
    """Raise ConfigError naming `name` unless `value` is one of `choices`."""
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}.")


def import_object(path: str, what: str = "object") -> Any:
    """The object at import path `module:attribute` (the working directory on the path, as `python -m` has it);
    ConfigError naming `what` when it cannot be imported."""
    import importlib
    import os
    import sys

    module_name, _, attribute = path.partition(":")
    if os.getcwd() not in sys.path:  # the `fluxrl` script does not put the working directory on the path
        sys.path.append(os.getcwd())
    try:
        found = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError, ValueError) as error:
        raise ConfigError(f"cannot import the {what} {path} ({error}).") from None
    return found


def refuse_unused(config: Any, names: tuple[str, ...], when: str) -> None:
    """Raise ConfigError if a field among `names` differs from its default: it does nothing `when`."""
    for item in dataclasses.fields(config):
        if item.name not in names:
            continue
        default = item.default if item.default is not dataclasses.MISSING else item.default_factory()
        value = getattr(config, item.name)
        if value != default:
            raise ConfigError(f"{item.name} does nothing {when}; leave it at its default {default!r} (got {value!r}).")


def to_typed(value: Any) -> Any:
    """A JSON-ready form of a (nested) dataclass that `from_typed` rebuilds exactly: each dataclass with its class
    path under "__class__", each tuple as {"__tuple__": [...]}."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        kind = type(value)
        return {"__class__": f"{kind.__module__}:{kind.__qualname__}",
                **{item.name: to_typed(getattr(value, item.name)) for item in dataclasses.fields(value) if item.init}}
    if isinstance(value, tuple):
        return {"__tuple__": [to_typed(item) for item in value]}
    if isinstance(value, list):
        return [to_typed(item) for item in value]
    if isinstance(value, dict):
        return {key: to_typed(item) for key, item in value.items()}
    return value


def from_typed(value: Any) -> Any:
    """The object `to_typed` wrote; ConfigError naming what cannot be rebuilt (a class that no longer exists or an
    option it no longer has)."""
    import importlib

    if isinstance(value, list):
        return [from_typed(item) for item in value]
    if not isinstance(value, dict):
        return value
    if "__tuple__" in value:
        return tuple(from_typed(item) for item in value["__tuple__"])
    if "__class__" not in value:
        return {key: from_typed(item) for key, item in value.items()}
    module, _, name = value["__class__"].partition(":")
    try:
        kind = importlib.import_module(module)
        for part in name.split("."):
            kind = getattr(kind, part)
    except (ImportError, AttributeError):
        raise ConfigError(f"stored class {value['__class__']} no longer exists.") from None
    fields = {item.name for item in dataclasses.fields(kind) if item.init}
    unknown = sorted(set(value) - fields - {"__class__"})
    if unknown:
        raise ConfigError(f"stored option {unknown[0]} is unknown to {kind.__name__}.")
    return kind(**{key: from_typed(item) for key, item in value.items() if key != "__class__"})


def to_dict(config: Any) -> dict:
    """A JSON-ready dict of a (possibly nested) config dataclass."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))
