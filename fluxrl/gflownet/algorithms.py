"""The GFlowNet algorithms by name: the command line's (tb, db, subtb, sdqn, mdqn) and the one stored in a run's
config.json, and their configs read back from it."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from fluxrl.core.config import ConfigError, check_choice
from fluxrl.gflownet import balance, soft_dqn

ALGORITHMS = {algorithm.name: algorithm for algorithm in (balance.ALGORITHM, soft_dqn.ALGORITHM)}
NAMES = ("tb", "db", "subtb", "sdqn", "mdqn")  # the balance losses, soft DQN and Munchausen DQN


def configure(name: str, **fields: Any) -> tuple[Any, Any]:
    """(algorithm, config) of the GFlowNet algorithm `name` (one of NAMES) with its config's `fields`: soft DQN is
    the soft-RL config without the Munchausen term, the balance losses one config told apart by `loss`."""
    check_choice("algorithm", name, NAMES)
    if name in ("sdqn", "mdqn"):
        return soft_dqn.ALGORITHM, soft_dqn.SoftDQNConfig(**({"munchausen_alpha": 0.0} if name == "sdqn" else {}),
                                                          **fields)
    return balance.ALGORITHM, balance.BalanceConfig(loss=name, **fields)


def config_from_dict(config_type: type, stored: dict) -> Any:
    """A (nested) config dataclass from its `to_dict` form; a field typed as a union of config dataclasses takes
    the member whose field names are exactly the stored keys (the members' field names differ)."""
    hints = typing.get_type_hints(config_type)
    values = {}
    for field in dataclasses.fields(config_type):
        if field.name not in stored:
            continue
        value = stored[field.name]
        if isinstance(value, dict):
            value = config_from_dict(_member_for(hints[field.name], value, field.name), value)
        values[field.name] = value
    unknown = set(stored) - set(values)
    if unknown:
        raise ConfigError(f"stored config has option {sorted(unknown)[0]}, unknown to {config_type.__name__}.")
    return config_type(**values)


def _member_for(hint: Any, stored: dict, name: str) -> type:
    members = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
        else (hint,)
    for member in members:
        if dataclasses.is_dataclass(member) and {f.name for f in dataclasses.fields(member)} == set(stored):
            return member
    raise ConfigError(f"stored config's {name} matches none of its types ({', '.join(map(str, members))}).")
