"""`fluxrl sweep FAMILY`: train every combination of swept options of `fluxrl train FAMILY`, locally or on Ray,
and tabulate.

    fluxrl sweep FAMILY [OPTIONS OF `fluxrl train FAMILY`] --sweep NAME=V1,V2 [--sweep ...] [--executor ray]
    fluxrl sweep FAMILY --resume DIR [--executor ray] [--ray-address ADDRESS]

FAMILY is gflownet, offline, onpolicy or meta. A combination is the `fluxrl train FAMILY` command line with
`--NAME VALUE` added for each swept option, so whatever that command accepts can be swept (for GFlowNets, the
loss, environment or exploration in their option form, `--sweep loss=tb,db`). Values of traced fields (the
GFlowNet configs' learning rates, coefficients, lambda) train as one hyperparameter axis in one run; every other
value makes a separate trial (see `fluxrl/sweep/`).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple, Optional

import tyro

from fluxrl.core.config import ConfigError, check_range

PROG = "fluxrl sweep"
FAMILIES = ("gflownet", "offline", "onpolicy", "meta")
# Options of the sweep itself; every other argument belongs to `fluxrl train FAMILY`.
OWN_OPTIONS = ("--sweep", "--executor", "--ray-address", "--cpus-per-trial", "--resume")
HELP_FLAGS = ("-h", "--help")


@dataclass(frozen=True)
class Sweep:
    """Train every combination of swept values of `fluxrl train FAMILY` options and write OUT/sweep.csv (one
    row per trial and seed), one figure per metric in OUT/figures/ and OUT/failures.md if a trial failed. Every
    option not listed here is one of `fluxrl train FAMILY` (see its --help), --out and --num-seeds included."""

    sweep: tuple[str, ...] = ()
    """NAME=V1,V2,...: an option of `fluxrl train FAMILY` and its values; repeat for a grid (lr=1e-3,3e-4)."""
    executor: Literal["local", "ray"] = "local"
    """local: trials one after another in this process; ray: trials as Ray tasks (pip install 'fluxrl[ray]')."""
    ray_address: Optional[str] = None
    """Ray cluster to use (e.g. auto, or ray://HOST:10001); default: a local Ray instance using every core."""
    cpus_per_trial: int = 1
    """CPU cores a Ray trial reserves (and JAX devices it uses); a machine runs cores / this trials at once."""
    resume: Optional[str] = None
    """Continue the sweep in this directory with its stored options (finished trials kept, others resumed)."""
    train: tyro.conf.Suppress[tuple[str, ...]] = ()
    """The `fluxrl train FAMILY` arguments (filled by `parse`)."""
    family: tyro.conf.Suppress[str] = "gflownet"
    """The family swept (the word after `fluxrl sweep`)."""

    def __post_init__(self):
        check_range("cpus_per_trial", self.cpus_per_trial, 1)


def _wants_ray(args: list[str]) -> bool:
    return any(a == "--executor=ray" or (a == "--executor" and args[i + 1:i + 2] == ["ray"])
               for i, a in enumerate(args))


def _split(args: list[str]) -> tuple[list[str], list[str]]:
    """(the sweep's own options and help flags, the `train FAMILY` arguments); every --sweep (repeated, or
    followed by several NAME=VALUES) is gathered into one."""
    own, swept, rest, index = [], [], [], 0
    while index < len(args):
        arg = args[index]
        name, has_value, value = arg.partition("=")
        if name == "--sweep":
            index += 1
            if has_value:
                swept.append(value)
            while index < len(args) and not has_value and not args[index].startswith("-"):
                swept.append(args[index])
                index += 1
        elif name in OWN_OPTIONS:
            taken = 1 if has_value else 2
            own += args[index:index + taken]
            index += taken
        else:
            (own if arg in HELP_FLAGS else rest).append(arg)
            index += 1
    return own + (["--sweep", *swept] if swept else []), rest


def parse(args: list[str]) -> Sweep:
    """The command the words after `fluxrl sweep` describe, checked; nothing is written."""
    from fluxrl.commands import parsing
    from fluxrl.sweep.executors import import_ray

    args = list(args)
    if _wants_ray(args):
        import_ray()  # first, so that a missing Ray is the one line a user sees
    if not args or args[0] not in FAMILIES:
        if args and args[0] in HELP_FLAGS:
            args = ["gflownet", *args]
        else:
            raise ConfigError(f"`fluxrl sweep` needs a family first: {', '.join(FAMILIES)} "
                              f"(e.g. fluxrl sweep gflownet --sweep lr=1e-3,3e-4).")
    own, rest = _split(args[1:])
    command = dataclasses.replace(parsing.parse(Sweep, own, prog=f"{PROG} {args[0]}"), train=tuple(rest),
                                  family=args[0])
    check(command)
    return command


class Plan(NamedTuple):
    """The trials of a sweep command, its swept option names, the spec stored in sweep.json, where it goes."""

    trials: list
    swept: list[str]
    spec: dict
    out: str
    overwrite: bool


@functools.lru_cache(maxsize=4)
def plan_of(command: Sweep) -> Plan:
    """Every combination parsed as a `train FAMILY` command line, and split into trials."""
    from fluxrl.commands.families import family
    from fluxrl.sweep.driver import stored_spec
    from fluxrl.sweep.plan import Point, grid, label, parse_swept, plan

    spec = {"sweep": list(command.sweep), "train": list(command.train),
            **({"family": command.family} if command.family != "gflownet" else {})}
    if command.resume is not None:
        if command.sweep or command.train:
            raise ConfigError("--resume continues a sweep with its stored options; only --executor, --ray-address "
                              "and --cpus-per-trial may be added.")
        spec = stored_spec(command.resume)
    trained = family(spec.get("family", "gflownet"))  # sweeps of earlier versions were all of GFlowNets
    swept = [parse_swept(text) for text in spec["sweep"]]
    if not swept:
        raise ConfigError("nothing to sweep: add --sweep NAME=V1,V2,... (e.g. --sweep lr=1e-3,3e-4).")
    points = []
    for values in grid(swept):
        added = [arg for name, value in values.items() for arg in (f"--{name.replace('_', '-')}", value)]
        try:
            parsed = trained.parse(spec["train"] + added)
            points.append(Point(values, *trained.resolve(parsed), command=parsed, data=trained.data))
        except ConfigError as error:
            raise ConfigError(f"{label(values)}: {error}") from None
    out = command.resume if command.resume is not None else points[0].run.out
    trials = plan(points, Path(out))
    return Plan(trials, [option.name for option in swept], spec, out, points[0].run.overwrite)


def check(command: Sweep) -> None:
    """ConfigError unless Ray is there when asked for, every combination is a valid run and --out can take the
    sweep; writes nothing."""
    from fluxrl.sweep.driver import check_out
    from fluxrl.sweep.executors import make_executor

    make_executor(command.executor, command.ray_address, command.cpus_per_trial)
    planned = plan_of(command)
    check_out(planned.out, planned.spec, command.resume is not None, planned.overwrite)


def execute(command: Sweep) -> int:
    """Run the sweep and print where its table is; exit status 0, or 1 when a trial failed."""
    from fluxrl.sweep.driver import clear, run_sweep
    from fluxrl.sweep.executors import make_executor

    check(command)
    planned = plan_of(command)
    if planned.overwrite and command.resume is None:
        clear(planned.out)
    executor = make_executor(command.executor, command.ray_address, command.cpus_per_trial)
    result = run_sweep(planned.trials, planned.out, planned.swept, executor, planned.spec)
    print(f"{len(result.rows)} rows in {result.table}; {len(result.figures)} figures in "
          f"{Path(planned.out) / 'figures'}/")
    if result.failed:
        print(f"{len(result.failed)} trial(s) failed: {', '.join(o.name for o in result.failed)}; "
              f"see {Path(planned.out) / 'failures.md'}")
        return 1
    return 0
