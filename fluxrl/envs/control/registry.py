"""Control environments by name, for the on-policy family: fluxrl's registered ones (grid worlds, two gymnax tasks,
MuJoCo Playground's DM Control tasks with the `playground` extra), any other gymnax environment with a Box action
space by its gymnax id, any Playground task by its own name, and a user's own `ControlEnv` by the import path of a
factory (module:callable)."""

from __future__ import annotations

import functools
from typing import Callable

from fluxrl.core.config import ConfigError
from fluxrl.envs.control.base import ControlEnv
from fluxrl.envs.control.gridworld import LAYOUTS, GridWorld
from fluxrl.envs.control.gymnax_adapter import GYMNAX_ENVS, GymnaxEnv
from fluxrl.envs.control.playground_adapter import PLAYGROUND_ENVS, PlaygroundEnv, playground_names

# Environments by name; other modules add theirs (tests register a toy one).
ENVS: dict[str, Callable[[], ControlEnv]] = {
    **{f"gridworld-{layout.replace('_', '-')}": (lambda layout=layout: GridWorld(layout)) for layout in LAYOUTS},
    **{name: (lambda env_id=env_id: GymnaxEnv(env_id)) for name, env_id in GYMNAX_ENVS.items()},
    **PLAYGROUND_ENVS}  # made only when asked for; they need the `playground` extra


def make_env(name: str) -> ControlEnv:
    """The environment `name`: a registered one, any gymnax environment with a Box action space by its id
    (e.g. Reacher-misc), any MuJoCo Playground task by its Playground name (e.g. FishSwim; with the extra), or a
    user's `ControlEnv` from a factory by import path (module:callable); ConfigError naming the registered ones
    otherwise."""
    if name in ENVS:
        return ENVS[name]()
    if ":" in name:
        return _user_env(name)
    import gymnax

    if name in gymnax.registered_envs:
        env = gymnax.make(name)[0]
        if not hasattr(env.action_space(env.default_params), "low"):
            raise ConfigError(f"{name} has a discrete action space; PPO and FPO here act in continuous (Box) "
                              "action spaces.")
        return GymnaxEnv(name)
    if name in playground_names():  # Playground's own name for any of its tasks, with the extra installed
        return PlaygroundEnv(name)
    known = ", ".join(sorted(ENVS)) or "(none registered)"
    raise ConfigError(f"env must be one of {known}, a gymnax id, a MuJoCo Playground task name or an import path "
                      f"module:callable, got {name!r}.")


@functools.lru_cache(maxsize=None)
def _user_env(path: str) -> ControlEnv:
    """A user's control environment from its factory (called without arguments), checked against ControlEnv."""
    from fluxrl.core.config import import_object

    env = import_object(path, "environment factory")()
    missing = [name for name in ("observation_size", "action_size", "default_params", "reset", "step")
               if not hasattr(env, name)]
    if missing:
        raise ConfigError(f"{path} made a {type(env).__name__}, which is no ControlEnv: it lacks "
                          f"{', '.join(missing)} (see fluxrl.envs.control.base.ControlEnv).")
    return env
