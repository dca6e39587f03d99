"""`fluxrl train gflownet`: train one GFlowNet algorithm on one environment, or resume a run.

The native form names its choices as subcommands, `fluxrl train gflownet tb hypergrid mlp lggfn --ndim 2 ...`;
the form of earlier versions, `--loss tb --env hypergrid --explore lggfn`, is rewritten into that form by
`native_args` alone, so both forms reach the same parser and the same configs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any

import tyro

from fluxrl.commands.gflownet_options import (ALGORITHM_NAMES, DEFAULT_NETWORK, ENV_NAMES, AlgorithmChoice,
                                              to_config)
from fluxrl.commands.resume import ResumeRun
from fluxrl.core.config import ConfigError, check_choice
from fluxrl.core.runner import RunConfig

PROG = "fluxrl train gflownet"
SELECTORS = ("--env", "--loss", "--explore")
LEGACY_EXPLORE = ("none", "epsilon", "replay", "lggfn", "teacher", "sagfn")
SOFT_RL = ("sdqn", "mdqn")
HELP_FLAGS = ("-h", "--help")
# Flags that take no value (help and RunConfig's booleans), so the word after them is not theirs.
VALUELESS = HELP_FLAGS + tuple(f"--{prefix}{f.name.replace('_', '-')}" for f in fields(RunConfig)
                               if f.type in (bool, "bool") for prefix in ("", "no-"))


@dataclass(frozen=True)
class TrainGFlowNet:
    """Train GFlowNets: TB, DB, SubTB (with replay, LGGFN, teacher or SA-GFN exploration), soft DQN or M-DQN,
    on hypergrids, bit sequences, parentheses or DAG structure learning. Choose them as subcommands,
    ALGORITHM [ENVIRONMENT] [NETWORK] [EXPLORATION], or with --loss / --env / --explore, and add --help after
    the choices for their options. `fluxrl train gflownet --resume DIR [--iterations N]` continues a run."""

    algorithm: AlgorithmChoice
    run: Annotated[tyro.conf.OmitArgPrefixes[RunConfig], tyro.conf.arg(name="run", prefix_name=False)] = field(
        default_factory=RunConfig)


def native_args(args: list[str]) -> list[str]:
    """The native subcommand form of a command line written with --env / --loss / --explore (or with no choice
    at all: TB on a hypergrid); a native one is returned as it is.

    `--loss L --env E --explore X` becomes `L E NETWORK X` followed by the other options, NETWORK being the
    environment's default (transformer on bitseq, else mlp) so that its options are accepted; `--explore
    epsilon` is plain sampling (`none`) and needs `--epsilon > 0`; soft DQN / M-DQN take no exploration word."""
    chosen, rest = _take_selectors(args)
    first_word = _first_word(rest)
    if not chosen:
        if first_word is not None or (rest and all(arg in HELP_FLAGS for arg in rest)):
            return rest  # native (an unknown word is the parser's to report), or help on the choices
    elif first_word is not None:
        raise ConfigError(f"--env / --loss / --explore cannot be mixed with the subcommand {first_word!r}; "
                          f"write the choices either as subcommands or as those options.")
    env, loss, explore = chosen.get("env", "hypergrid"), chosen.get("loss", "tb"), chosen.get("explore", "none")
    if ":" in env:  # an import path: the user's own environment
        env, rest = "custom", ["--factory", env] + rest
    check_choice("env", env, ENV_NAMES)
    check_choice("loss", loss, ALGORITHM_NAMES)
    check_choice("explore", explore, LEGACY_EXPLORE)
    if explore == "epsilon" and not _positive_epsilon(rest):
        raise ConfigError("explore=epsilon needs --epsilon > 0 (the probability of a uniform action).")
    words = [loss, env, DEFAULT_NETWORK[env]]
    if loss in SOFT_RL:
        if explore not in ("none", "epsilon"):
            raise ConfigError(f"loss={loss} has its own replay; explore must be none or epsilon, got {explore}.")
    else:
        words.append("none" if explore == "epsilon" else explore)
    return words + rest


def _take_selectors(args: list[str]) -> tuple[dict[str, str], list[str]]:
    chosen, rest, index = {}, [], 0
    while index < len(args):
        arg = args[index]
        name, has_value, value = arg.partition("=")
        if name in SELECTORS:
            if not has_value:
                if index + 1 == len(args):
                    raise ConfigError(f"{name} needs a value.")
                value, index = args[index + 1], index + 1
            chosen[name[2:]] = value
        else:
            rest.append(arg)
        index += 1
    return chosen, rest


def _first_word(args: list[str]) -> str | None:
    """The first argument that is neither an option nor an option's value: a subcommand."""
    expects_value = False
    for arg in args:
        if expects_value:
            expects_value = False
        elif arg.startswith("-"):
            expects_value = "=" not in arg and arg not in VALUELESS
        else:
            return arg
    return None


def _positive_epsilon(args: list[str]) -> bool:
    for index, arg in enumerate(args):
        name, has_value, value = arg.partition("=")
        if name == "--epsilon":
            value = value if has_value else (args[index + 1] if index + 1 < len(args) else "")
            try:
                return float(value) > 0.0
            except ValueError:
                return True  # not a number: the parser names the bad value
    return False


def parse(args: list[str]) -> TrainGFlowNet:
    """The command a `train gflownet` command line (after those two words) describes, its config checked."""
    from fluxrl.commands import parsing

    command = parsing.parse(TrainGFlowNet, native_args(list(args)), prog=PROG)
    resolve(command)  # the configs' own checks
    return command


def resolve(command: TrainGFlowNet | ResumeRun) -> tuple[Any, Any, RunConfig]:
    """(algorithm, config, run config) of a command; a resumed run's come from its directory."""
    if isinstance(command, TrainGFlowNet):
        algorithm, config = to_config(command.algorithm)
        return algorithm, config, command.run
    from fluxrl.core.rundir import CONFIG_FILE, read_run
    from fluxrl.gflownet.algorithms import ALGORITHMS, config_from_dict

    stored = read_run(command.resume)
    name = stored["algorithm"]
    try:
        if name == "gflownet":  # the flat config of fluxrl versions before the per-algorithm configs
            raise ConfigError(f"--resume {command.resume} was written by an earlier fluxrl whose flat GFlowNet "
                              f"config this version no longer reads; start it again with the same options.")
        if name in ALGORITHMS:
            algorithm = ALGORITHMS[name]
            config = config_from_dict(algorithm.config_type, stored["config"])
        else:
            raise ConfigError(f"--resume {command.resume} holds a {name!r} run, not a GFlowNet run.")
        run = {**stored["run"], "out": command.resume, "overwrite": False, "progress": command.progress}
        if command.iterations is not None:
            run["iterations"] = command.iterations
        return algorithm, config, RunConfig(**run)
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        raise ConfigError(f"--resume {command.resume}: its {CONFIG_FILE} does not describe a {name} run "
                          f"({type(error).__name__}: {error}).") from None


def execute(command: TrainGFlowNet | ResumeRun) -> int:
    """Train (or continue) the run a command describes and print its summary; exit status 0."""
    from fluxrl.commands.families import stored_axis, train
    from fluxrl.core.rundir import prepare_out_dir
    from fluxrl.core.runner import run

    algorithm, config, run_config = resolve(command)
    if isinstance(command, ResumeRun):
        result = run(algorithm, config, run_config, resume=True, axis=stored_axis(command.resume))
    else:
        prepare_out_dir(run_config.out, run_config.overwrite)
        result = train(command)
    print_summary(result.summary, run_config.out)
    return 0


def print_summary(summary: dict, out: str) -> None:
    """The final metrics, one per line, and where the files are."""
    shown = {k: v for k, v in summary.items() if k not in ("per_seed", "seeds", "members")}
    width = max(len(k) for k in shown)
    for name, value in shown.items():
        text = f"{value:.6g}" if isinstance(value, float) else str(value)
        print(f"  {name:<{width}}  {text}")
    picture = ", distribution.png" if (Path(out) / "distribution.png").exists() else ""
    print(f"results in {out}/ (summary.json, metrics.csv{picture})")
    if "members" in summary:  # a hyperparameter axis: each member's results in its own directory
        print(f"members: {', '.join(f'{out}/{name}/' for name in summary['members'])}")
