"""The `fluxrl` command line as one tree of tyro subcommands, one module per command.

    fluxrl demo [DIR]
    fluxrl train gflownet ALGORITHM [ENVIRONMENT] [NETWORK] [EXPLORATION] [OPTIONS]   (or --loss/--env/--explore)
    fluxrl train offline ALGORITHM --dataset NAME_OR_PATH [OPTIONS]   (or --algo ALGORITHM)
    fluxrl train onpolicy ALGORITHM [--env NAME] [OPTIONS]   (or --algo ALGORITHM)
    fluxrl train meta [--meta-params gamma,lambda] [--inner-steps K] [--mix none|uniform|geometric] [OPTIONS]
    fluxrl train {gflownet,offline,onpolicy,meta} --resume DIR [--iterations N]
    fluxrl reproduce {lggfn,softrl,offline,cnf,fpo,metagrad} [OPTIONS] [--executor ray]
    fluxrl data make NAME [--data-dir DIR] [--size N] [--seed S]
    fluxrl sample RUN --n N --out FILE.{csv,npz}
    fluxrl evaluate RUN --episodes N
    fluxrl sweep FAMILY [TRAIN FAMILY OPTIONS] --sweep NAME=V1,V2 [...] [--executor ray] | --resume DIR

A new family is one more entry of `families.families()`; a new command one more member of `CommandLine`. `parse_command_line` parses and validates without
training or writing anything; `run_command_line` also executes, and turns every user mistake into one line.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Annotated, Any, Sequence, Union

import tyro

from fluxrl.commands import data, demo, families, parsing, reproduce, resume, sweep, use
from fluxrl.core.config import ConfigError

# `fluxrl train --help` lists the registered families (each parses its own command line: families.py).
TrainFamily = Annotated[Union[tuple(Annotated[family.command_type, tyro.conf.subcommand(name)]
                                    for name, family in families.families().items())],
                        tyro.conf.arg(name="family", prefix_name=False)]


@dataclass(frozen=True)
class Train:
    """Train one algorithm of a family through the runner (seeds vmapped, metrics, checkpoints)."""

    family: TrainFamily


@dataclass(frozen=True)
class Data:
    """Datasets for offline RL, made locally (nothing is downloaded)."""

    action: Annotated[Union[
        Annotated[data.DataMake, tyro.conf.subcommand("make")],
        Annotated[None, tyro.conf.Suppress],  # a union needs two members; this one is never offered
    ], tyro.conf.arg(name="action", prefix_name=False)]


CommandLine = Union[
    Annotated[demo.Demo, tyro.conf.subcommand("demo")],
    Annotated[Train, tyro.conf.subcommand("train")],
    Annotated[reproduce.Reproduce, tyro.conf.subcommand("reproduce")],
    Annotated[Data, tyro.conf.subcommand("data")],
    Annotated[use.Sample, tyro.conf.subcommand("sample")],
    Annotated[use.Evaluate, tyro.conf.subcommand("evaluate")],
]


def parse_command_line(argv: Sequence[str]) -> Any:
    """The command a command line describes, validated, nothing written; HelpShown after help, ConfigError for
    a mistake."""
    argv = list(argv)
    if argv[:1] == ["sweep"]:
        return sweep.parse(argv[1:])
    if argv[:1] == ["train"] and argv[1:2] and argv[1] in resume.FAMILIES and resume.is_resume(argv[2:]):
        # the run directory is read when the command runs, one clear error there
        return Resumed(argv[1], parsing.parse(resume.ResumeRun, resume.check_args(argv[2:]),
                                              prog=f"fluxrl train {argv[1]}"))
    if argv[:1] == ["train"] and argv[1:2] and argv[1] in families.families():
        return families.family(argv[1]).parse(argv[2:])
    command = parsing.parse(CommandLine, argv, prog="fluxrl")
    if isinstance(command, reproduce.Reproduce):
        reproduce.check(command)
    elif isinstance(command, demo.Demo):
        demo.check(command)
    elif isinstance(command, Data):
        command = command.action
        data.check(command)
    return command


@dataclass(frozen=True)
class Resumed:
    """A `train FAMILY --resume DIR` command line, parsed."""

    family: str
    options: resume.ResumeRun


def execute(command: Any) -> int:
    """Run a parsed command; its exit status."""
    if isinstance(command, Resumed):
        return resume.execute(command.family, command.options)
    trained = families.family_of(command)
    if trained is not None:
        return trained.execute(command)
    if isinstance(command, reproduce.Reproduce):
        return reproduce.execute(command)
    if isinstance(command, sweep.Sweep):
        return sweep.execute(command)
    if isinstance(command, data.DataMake):
        return data.execute(command)
    if isinstance(command, use.Sample):
        return use.execute(command)
    if isinstance(command, use.Evaluate):
        return use.execute_evaluate(command)
    return demo.execute(command)


def run_command_line(argv: Sequence[str]) -> int:
    """Parse and run a command line: 0 on success or help, 2 (one line on stderr) for a mistake, 1 for NaN."""
    from fluxrl.core.devices import use_every_core
    from fluxrl.core.runner import NonFiniteMetricError
    from fluxrl.sweep.executors import TaskFailed

    try:
        command = parse_command_line(argv)
        # Parsing runs no JAX; the devices are set before the command's own JAX work (datasets, pre-training).
        use_every_core(seeds_of(command))
        return execute(command)
    except parsing.HelpShown:
        return 0
    except ConfigError as error:
        return fail(str(error), status=2)
    except (NonFiniteMetricError, TaskFailed) as error:
        return fail(str(error), status=1)


def seeds_of(command: Any) -> int | None:
    """Seeds the command trains at once, where its options or the run it resumes say; else None."""
    run = getattr(command, "run", None)
    if hasattr(run, "num_seeds"):
        return run.num_seeds
    resumed = getattr(getattr(command, "options", command), "resume", None)
    if isinstance(resumed, str):  # a run directory: its stored options (a bad one is reported when it runs)
        from fluxrl.core.rundir import read_run

        try:
            return int(read_run(resumed)["run"]["num_seeds"])
        except (ConfigError, KeyError, TypeError, ValueError):
            return None
    return getattr(getattr(command, "paper", None), "seeds", None)


def fail(message: str, status: int) -> int:
    """Print `fluxrl: error: message` on stderr; returns `status`."""
    print(f"fluxrl: error: {message}", file=sys.stderr)
    return status
