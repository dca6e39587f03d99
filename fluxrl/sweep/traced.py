"""Which config fields can be traced: swept, they become one hyperparameter axis of one compiled program.

A config class declares its traced fields in a `TRACED_FIELDS` class attribute (a tuple of field names); every
other field is static: it changes shapes, loop lengths or the program itself (a loss, a network size, an
environment, a value tested in Python, an optimizer chosen by it), and a sweep runs each of its values as a
separate trial. Each config states beside its declaration why those fields may be traced. A field not declared
is static: the safe side, since a wrong static only costs a compilation.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def declared(config_type: type) -> tuple[str, ...]:
    """The traced field names a config class declares (its TRACED_FIELDS; none when it declares nothing)."""
    return tuple(getattr(config_type, "TRACED_FIELDS", ()))


def traced_paths(config: Any) -> set[str]:
    """Dotted paths of every traced field of a config and of the configs nested in it ("lr", "explore.lam")."""
    paths = set(declared(type(config)))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            paths.update(f"{field.name}.{path}" for path in traced_paths(value))
    return paths
