"""`fluxrl train onpolicy`: train FPO or Gaussian PPO online in a control environment, several seeds at once.

    fluxrl train onpolicy ALGORITHM [--env NAME] [ALGORITHM OPTIONS] [RUN OPTIONS]
    fluxrl train onpolicy --algo ALGORITHM [--env NAME] ...      (rewritten by `native_args`)

Every setting not on the command line comes from the tuned settings of the environment's family
(`fluxrl/onpolicy/tuned.py`), shared by both algorithms. On a grid world the run is evaluated at the saddle states and
from the start cell (`fluxrl/onpolicy/gridworld_eval.py`), and `saddle_actions.png` shows each seed's action samples
at the start cell: two clouds where the policy keeps both goals.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Union

import tyro

from fluxrl.core.config import ConfigError, check_choice
from fluxrl.core.runner import RunConfig
from fluxrl.onpolicy.fpo import FPOConfig
from fluxrl.onpolicy.ppo import PPOConfig

PROG = "fluxrl train onpolicy"
ALGORITHM_NAMES = ("ppo", "fpo")
DEFAULT_ENV = "gridworld-two-walls"

AlgorithmChoice = Annotated[Union[
    Annotated[PPOConfig, tyro.conf.subcommand("ppo")],
    Annotated[FPOConfig, tyro.conf.subcommand("fpo")],
], tyro.conf.arg(name="algorithm", prefix_name=False)]


def _onpolicy_run() -> RunConfig:
    return RunConfig(iterations=100, out="runs/onpolicy", log_every=5, eval_every=25, checkpoint_every=25)


@dataclass(frozen=True)
class TrainOnPolicy:
    """Train an on-policy algorithm (ppo: tanh-Gaussian PPO; fpo: a flow policy by flow matching policy gradients)
    in a control environment (--env), several seeds at once; settings not given are tuned for the environment."""

    algorithm: AlgorithmChoice
    run: Annotated[tyro.conf.OmitArgPrefixes[RunConfig], tyro.conf.arg(name="run", prefix_name=False)] = field(
        default_factory=_onpolicy_run)


def _option(args: list[str], name: str) -> tuple[str | None, list[str]]:
    """(value of `--name VALUE` or `--name=VALUE`, args without it); (None, args) when absent."""
    for index, arg in enumerate(args):
        option, has_value, value = arg.partition("=")
        if option == name:
            if not has_value:
                if index + 1 == len(args):
                    raise ConfigError(f"{name} needs a value.")
                value = args[index + 1]
            return value, args[:index] + args[index + (1 if has_value else 2):]
    return None, args


def native_args(args: list[str]) -> list[str]:
    """The subcommand form of a command line that names its algorithm with `--algo NAME`; one already in that form
    is returned as it is."""
    value, rest = _option(list(args), "--algo")
    if value is None:
        return list(args)
    check_choice("algo", value, ALGORITHM_NAMES)
    return [value] + rest


def defaults(algorithm: str, env: str, ratio: str | None = None) -> TrainOnPolicy:
    """The command with every setting tuned for `env` (and FPO's `ratio`: tuned.py), before the command line's own
    options."""
    from fluxrl.onpolicy import rollout, tuned

    rollout.make_env(env)  # an unknown name fails here, naming the registered ones
    run = dataclasses.replace(_onpolicy_run(), iterations=tuned.tuned_iterations(env))
    chosen = {"ratio": ratio} if algorithm == "fpo" and ratio is not None else {}
    return TrainOnPolicy(tuned.tuned_config(algorithm, env, **chosen), run)


def parse(args: list[str]) -> TrainOnPolicy:
    """The command a `train onpolicy` command line (after those two words) describes, checked; nothing trained."""
    from fluxrl.commands import parsing

    args = native_args(list(args))
    algorithm = next((arg for arg in args if not arg.startswith("-")), None)
    env, _ = _option(args, "--env")
    ratio, _ = _option(args, "--ratio")
    if algorithm not in ALGORITHM_NAMES or any(arg in ("-h", "--help") for arg in args):
        return parsing.parse(TrainOnPolicy, args, prog=PROG)  # help, or tyro's own error for the algorithm
    default = defaults(algorithm, env or DEFAULT_ENV, ratio if ratio in ("cfm", "denoising-mdp") else None)
    command = parsing.parse(TrainOnPolicy, args, prog=PROG, default=default)
    check(command)
    return command


def check(command: TrainOnPolicy, resume: bool = False) -> None:
    """ConfigError unless the environment is registered and --out may hold a new run (or, resuming, is one);
    writes nothing."""
    from fluxrl.core.rundir import prepare_out_dir
    from fluxrl.onpolicy import rollout

    rollout.make_env(command.algorithm.env)
    if not resume:
        prepare_out_dir(command.run.out, command.run.overwrite)


def algorithm_for(config):
    """The runner's Algorithm for a PPO or FPO config, with the grid-world evaluation on a grid world."""
    from fluxrl.onpolicy import fpo, gridworld_eval, ppo

    if isinstance(config, FPOConfig):
        return gridworld_eval.with_gridworld_evaluation(fpo.ALGORITHM, config, fpo.sample)
    return gridworld_eval.with_gridworld_evaluation(ppo.ALGORITHM, config, lambda _: ppo.sample)


def resolve(command: TrainOnPolicy):
    """(algorithm, config, run options) the command trains."""
    return algorithm_for(command.algorithm), command.algorithm, command.run


def execute(command: TrainOnPolicy, resume: bool = False) -> int:
    """Train every seed (or, resuming, the rest of the run), print the summary (and draw the saddle-state actions
    on a grid world); exit status 0."""
    from fluxrl.commands.families import train
    from fluxrl.commands.train_gflownet import print_summary
    from fluxrl.onpolicy import gridworld_eval

    check(command, resume)
    algorithm, config, run_config = resolve(command)
    steps = config.num_envs * config.num_steps * run_config.iterations
    print(f"{PROG}: {algorithm.name} on {config.env}, {run_config.num_seeds} seed(s), {run_config.iterations:,} "
          f"iterations ({steps:,} env steps per seed)")
    result = train(command, resume)
    layout = gridworld_eval.layout_of(config.env)
    if layout is not None:
        from fluxrl.onpolicy import plots

        path = Path(run_config.out) / "saddle_actions.png"
        plots.plot_start_actions({algorithm.name: (config, result.state)}, layout, path,
                                 seeds=[run_config.seed + i for i in range(run_config.num_seeds)])
        print(f"action samples at the start cell: {path}")
    print_summary(result.summary, run_config.out)
    return 0
