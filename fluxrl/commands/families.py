"""The families `fluxrl train` and `fluxrl sweep` know, and the one way a family's command becomes a run.

A family is its `train` command: how its command line parses (`parse`), what a parsed command trains
(`resolve`: algorithm, config, run options) and what the run reads besides its config (`data`: a dataset with
its pre-trained decoder, or nothing). `train` runs any family's command the same way, so a sweep's trial, a
resumed run and `fluxrl train` are one path.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from fluxrl.core.config import ConfigError


class Family(NamedTuple):
    """One family's `fluxrl train` command: its parser, what a command trains and the data it reads."""

    name: str
    command_type: type
    parse: Callable[[list[str]], Any]  # the checked command of `fluxrl train NAME ARGS`; nothing written
    resolve: Callable[[Any], tuple]  # (algorithm, config, RunConfig) of a command
    data: Callable[[Any, Any, Any], Any]  # (command, algorithm, config) -> the run's read-only data, or None
    execute: Callable[..., int]  # (command) -> exit status: train, report, print the summary (offline, on-policy
    # and meta also take resume=True for a command rebuilt from a run; GFlowNets resume from a ResumeRun)


def _no_data(command: Any, algorithm: Any, config: Any) -> None:
    return None  # the algorithm's own make_data (GFlowNets) or nothing beyond the config


def families() -> dict[str, Family]:
    """Every family by name."""
    from fluxrl.commands import train_gflownet, train_meta, train_offline, train_onpolicy

    return {
        "gflownet": Family("gflownet", train_gflownet.TrainGFlowNet, train_gflownet.parse, train_gflownet.resolve,
                           _no_data, train_gflownet.execute),
        "offline": Family("offline", train_offline.TrainOffline, train_offline.parse, train_offline.resolve,
                          train_offline.load_data, train_offline.execute),
        "onpolicy": Family("onpolicy", train_onpolicy.TrainOnPolicy, train_onpolicy.parse, train_onpolicy.resolve,
                           _no_data, train_onpolicy.execute),
        "meta": Family("meta", train_meta.TrainMeta, train_meta.parse, train_meta.resolve, _no_data,
                       train_meta.execute),
    }


def family(name: str) -> Family:
    """The family called `name`; ConfigError naming the others."""
    known = families()
    if name not in known:
        raise ConfigError(f"unknown family {name!r}; the families are {', '.join(known)}.")
    return known[name]


def family_of(command: Any) -> Family | None:
    """The family whose `train` command `command` is, or None."""
    return next((f for f in families().values() if isinstance(command, f.command_type)), None)


def train(command: Any, resume: bool = False, axis: dict[str, list] | None = None):
    """Train (or continue) the run a family's command describes; the runner's RunResult. A resumed run keeps the
    hyperparameter axis it trained (a sweep's trial)."""
    from fluxrl.core.runner import run

    algorithm, config, run_config = family_of(command).resolve(command)
    if resume and axis is None:
        axis = stored_axis(run_config.out)
    data = family_of(command).data(command, algorithm, config)
    return run(algorithm, config, run_config, data=data, resume=resume, axis=axis, command=command)


def stored_axis(out: str) -> dict[str, list] | None:
    """The hyperparameter axis the run in `out` trained (a sweep's trial: {field path: values}), or None."""
    from fluxrl.core.rundir import read_run

    axis = read_run(out).get("axis")
    return dict(axis["values"]) if axis else None
