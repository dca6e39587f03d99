"""Which config fields can be traced: swept, they become one hyperparameter axis of one compiled program.

A config class declares its traced fields in a `TRACED_FIELDS` class attribute (a tuple of field names); every
other field is static: it changes shapes, loop lengths or the program itself (a loss, a network size, an
environment, a value tested in Python, an optimizer chosen by it), and a sweep runs each of its values as a
separate trial. The GFlowNet configs' declarations are kept here, beside the reasons, until the configs carry
their own. A field not declared is static: the safe side, since a wrong static only costs a compilation.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fluxrl.gflownet.balance import BalanceConfig
from fluxrl.gflownet.lggfn import LGGFNConfig
from fluxrl.gflownet.sagfn import SAGFNConfig
from fluxrl.gflownet.soft_dqn import SoftDQNConfig
from fluxrl.gflownet.teacher import TeacherConfig

# Every field below enters the update only through arithmetic on arrays (optax.adam(lr), jnp.where, powers):
#  - BalanceConfig: weight_decay is not traced (model.optimizer picks the chain with `if weight_decay == 0.0`).
#  - SoftDQNConfig: munchausen_alpha is not traced (it sets tau, a static field of the tempered policy, and
#    `if munchausen_alpha > 0` skips a pass); l0 is not (it may be None); weight_decay as above.
DECLARED: dict[type, tuple[str, ...]] = {
    BalanceConfig: ("lr", "log_z_lr", "subtb_lambda", "epsilon", "temperature"),
    SoftDQNConfig: ("lr", "epsilon", "temperature", "leaf_coefficient", "target_polyak", "per_alpha", "per_beta",
                    "per_beta_final"),
    LGGFNConfig: ("lam",),
    TeacherConfig: ("loss_exponent",),
    SAGFNConfig: ("beta_e", "beta_i", "beta_sn", "rnd_lr"),
}


def declared(config_type: type) -> tuple[str, ...]:
    """The traced field names a config class declares (its TRACED_FIELDS, else this module's table)."""
    own = getattr(config_type, "TRACED_FIELDS", None)
    if own is not None:
        return tuple(own)
    return next((names for cls, names in DECLARED.items() if issubclass(config_type, cls)), ())


def traced_paths(config: Any) -> set[str]:
    """Dotted paths of every traced field of a config and of the configs nested in it ("lr", "explore.lam")."""
    paths = set(declared(type(config)))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            paths.update(f"{field.name}.{path}" for path in traced_paths(value))
    return paths
