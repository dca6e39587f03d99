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


def refuse_unused(config: Any, names: tuple[str, ...], when: str) -> None:
    """Raise ConfigError if a field among `names` differs from its default: it does nothing `when`."""
    for item in dataclasses.fields(config):
        if item.name not in names:
            continue
        default = item.default if item.default is not dataclasses.MISSING else item.default_factory()
        value = getattr(config, item.name)
        if value != default:
            raise ConfigError(f"{item.name} does nothing {when}; leave it at its default {default!r} (got {value!r}).")


def to_dict(config: Any) -> dict:
    """A JSON-ready dict of a (possibly nested) config dataclass."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))
