"""`fluxrl train offline`: train BC, TD3+BC, IQL, AWAC, CNF or PLAS on an offline dataset, evaluated in its
environment.

    fluxrl train offline ALGORITHM --dataset NAME_OR_PATH [ALGORITHM OPTIONS] [RUN OPTIONS]
    fluxrl train offline --algo ALGORITHM --dataset NAME_OR_PATH ...      (rewritten by `native_args`)

The dataset (a D4RL-style name made by `fluxrl data make`, a D4RL `.hdf5`, an `.npz` or a Minari directory) is
loaded once and shared by every seed; evaluations report the mean return and the D4RL-normalised score. CNF and
PLAS first pre-train their decoder (a normalizing flow, a VAE) on the dataset, or reuse the one cached for it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, Optional, Union

import tyro

from fluxrl.core.config import ConfigError, check_choice, check_range
from fluxrl.core.runner import RunConfig
from fluxrl.offline.awac import AWACConfig
from fluxrl.offline.bc import BCConfig
from fluxrl.offline.cnf import CNFConfig
from fluxrl.offline.iql import IQLConfig
from fluxrl.offline.plas import PLASConfig
from fluxrl.offline.td3bc import TD3BCConfig

PROG = "fluxrl train offline"
ALGORITHM_NAMES = ("bc", "td3bc", "iql", "awac", "cnf", "plas")

AlgorithmChoice = Annotated[Union[
    Annotated[BCConfig, tyro.conf.subcommand("bc")],
    Annotated[TD3BCConfig, tyro.conf.subcommand("td3bc")],
    Annotated[IQLConfig, tyro.conf.subcommand("iql")],
    Annotated[AWACConfig, tyro.conf.subcommand("awac")],
    Annotated[CNFConfig, tyro.conf.subcommand("cnf")],
    Annotated[PLASConfig, tyro.conf.subcommand("plas")],
], tyro.conf.arg(name="algorithm", prefix_name=False)]


def _offline_run() -> RunConfig:
    return RunConfig(iterations=100_000, out="runs/offline", log_every=1000, eval_every=5000,
                     checkpoint_every=5000)


@dataclass(frozen=True)
class TrainOffline:
    """Train an offline RL algorithm (bc, td3bc, iql, awac, cnf, plas) on a dataset, several seeds at once, with
    evaluations in the dataset's Gymnasium environment (mean return, and the normalised score where known)."""

    algorithm: AlgorithmChoice
    dataset: str = ""
    """Dataset: a name made by `fluxrl data make` (e.g. halfcheetah-medium-replay), or a path to a D4RL .hdf5,
    an .npz or a Minari dataset directory."""
    data_dir: Optional[str] = None
    """Where named datasets are kept (default: the one `fluxrl data make` writes to)."""
    env: Optional[str] = None
    """The environment the data comes from, when the file does not say: any Gymnasium id (e.g. Pendulum-v1), a
    dataset name, or none (no evaluation: losses and Q values only)."""
    eval_episodes: int = 10
    """Episodes per evaluation (each seed)."""
    models_dir: Optional[str] = None
    """Where CNF's flows and PLAS's VAEs are cached after pre-training (default: under the user's cache
    directory); one pre-trained model per dataset, config and seed, reused by later runs."""
    normalize_states: bool = True
    """Normalise observations by the dataset's mean and std (CORL's default), in training and evaluation."""
    run: Annotated[tyro.conf.OmitArgPrefixes[RunConfig], tyro.conf.arg(name="run", prefix_name=False)] = field(
        default_factory=_offline_run)

    def __post_init__(self):
        check_range("eval_episodes", self.eval_episodes, 1)


def algorithm_module(config):
    """The algorithm module (bc, td3bc, iql, awac, cnf or plas) a config belongs to."""
    from fluxrl.offline import awac, bc, cnf, iql, plas, td3bc

    return {BCConfig: bc, TD3BCConfig: td3bc, IQLConfig: iql, AWACConfig: awac, CNFConfig: cnf,
            PLASConfig: plas}[type(config)]


def native_args(args: list[str]) -> list[str]:
    """The subcommand form of a command line that names its algorithm with `--algo NAME` (or `--algo=NAME`);
    one already in that form is returned as it is."""
    for index, arg in enumerate(args):
        name, has_value, value = arg.partition("=")
        if name == "--algo":
            if not has_value:
                if index + 1 == len(args):
                    raise ConfigError("--algo needs a value (bc, td3bc, iql, awac, cnf or plas).")
                value = args[index + 1]
            check_choice("algo", value, ALGORITHM_NAMES)
            rest = args[:index] + args[index + (1 if has_value else 2):]
            return [value] + rest
    return args


def parse(args: list[str]) -> TrainOffline:
    """The command a `train offline` command line (after those two words) describes, checked; nothing loaded."""
    from fluxrl.commands import parsing

    command = parsing.parse(TrainOffline, native_args(list(args)), prog=PROG)
    check(command)
    return command


def check(command: TrainOffline, resume: bool = False) -> None:
    """ConfigError unless the dataset is named and --out may hold a new run (or, resuming, is one); writes and
    loads nothing."""
    from fluxrl.core.rundir import prepare_out_dir

    if not command.dataset:
        raise ConfigError("--dataset is required: a name made by `fluxrl data make` or a path to a D4RL .hdf5, "
                          "an .npz or a Minari dataset directory.")
    if not resume:
        prepare_out_dir(command.run.out, command.run.overwrite)


def resolve_config(command: TrainOffline):
    """The algorithm's config as trained: IQL's actor learning rate decays over the run unless told otherwise."""
    config = command.algorithm
    if isinstance(config, IQLConfig) and config.actor_lr_decay_steps is None:
        config = dataclasses.replace(config, actor_lr_decay_steps=command.run.iterations)
    return config


def resolve(command: TrainOffline):
    """(algorithm, config, run options) the command trains."""
    config = resolve_config(command)
    return algorithm_module(config).ALGORITHM, config, command.run


def load_data(command: TrainOffline, algorithm, config, verbose: bool = True):
    """The dataset the command names, with the algorithm's pre-trained decoder where it has one; `verbose` says
    what is loaded and shows the pre-training's progress bar (when the run shows one)."""
    from fluxrl.offline.common import load_offline_data

    data = load_offline_data(command.dataset, algorithm.name, command.data_dir, command.eval_episodes,
                             command.normalize_states, command.env)
    if verbose:
        print(f"{PROG}: {algorithm.name} on {command.dataset} ({data.rewards.shape[0]:,} transitions), "
              f"{command.run.num_seeds} seed(s), {command.run.iterations:,} updates")
    if algorithm.prepare_data is not None:  # latent-space algorithms: pre-train (or reuse) the decoder first
        if verbose:
            print(f"{PROG}: {algorithm.name}'s decoder for {command.dataset} (pre-trained once, then cached)")
        data = algorithm.prepare_data(config, data, command.dataset, command.models_dir, command.run.seed,
                                      verbose and command.run.progress)
    return data


def execute(command: TrainOffline, resume: bool = False) -> int:
    """Load the dataset, train every seed (or, resuming, the rest of the run), print the summary; exit status 0."""
    from fluxrl.commands.families import train
    from fluxrl.commands.train_gflownet import print_summary

    check(command, resume)
    print_summary(train(command, resume).summary, command.run.out)
    return 0
