"""`fluxrl train meta`: A2C on Jumanji Snake whose hyperparameters tune themselves by meta-gradients.

    fluxrl train meta --env snake-6x6 --meta-params gamma,lambda,entropy --inner-steps K --mix {none,uniform,geometric}
    fluxrl train meta --inner-steps 0 --gamma 0.8        (plain A2C with fixed hyperparameters)

Every `--eval-every` iterations the meta-gradient's variance, its cosine to a large-sample reference and the mixed
estimators' bias proxy are measured at the run's current parameters (docs/metrics.md, "Meta-gradient metrics").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import tyro

from fluxrl.core.config import ConfigError, check_range
from fluxrl.core.runner import RunConfig
from fluxrl.meta import a2c, metagrad

PROG = "fluxrl train meta"


def _meta_run() -> RunConfig:
    return RunConfig(iterations=500, out="runs/meta", log_every=10, eval_every=100, checkpoint_every=100)


def _a2c() -> a2c.A2CConfig:
    return a2c.A2CConfig(updates_per_iteration=8)


@dataclass(frozen=True)
class TrainMeta:
    """Train A2C on Snake with its discount, lambda and loss weights tuned by K-step or mixed meta-gradients,
    several seeds at once, the meta-gradient's variance measured as it goes."""

    meta_params: str = "gamma"
    """Meta-parameters learned, comma-separated, among gamma, lambda, policy, value, entropy."""
    inner_steps: int = 1
    """K: inner updates per meta-update, differentiated through; 0 trains plain A2C (nothing meta-learned)."""
    mix: str = "none"
    """none: the K-step meta-gradient; uniform or geometric: mixed over the K inner steps."""
    kappa: float = 0.5
    """Geometric mixing's ratio: weights proportional to kappa^(k-1), in (0, 1]."""
    meta_lr: float = 3e-3
    """Adam learning rate of the meta-parameter logits."""
    meta_clip: float = 0.1
    """Global-norm clip of the meta-gradient."""
    autodiff: str = "auto"
    """Meta-gradient by forward or reverse mode (both exact); auto: forward for one learned meta-parameter, unless
    --remat."""
    remat: bool = False
    """Reverse mode: recompute the inner updates' activations in the backward pass (less memory for large K)."""
    variance_samples: int = 8
    """Independent meta-gradients per variance measurement (at every evaluation), compared with the reference."""
    reference_samples: int = 64
    """Independent meta-gradients drawn apart whose mean is the large-sample reference (at every evaluation)."""
    agent: Annotated[tyro.conf.OmitArgPrefixes[a2c.A2CConfig], tyro.conf.arg(name="agent", prefix_name=False)] = \
        field(default_factory=_a2c)
    run: Annotated[tyro.conf.OmitArgPrefixes[RunConfig], tyro.conf.arg(name="run", prefix_name=False)] = field(
        default_factory=_meta_run)

    def __post_init__(self):
        check_range("inner_steps", self.inner_steps, 0)


def parse(args: list[str]) -> TrainMeta:
    """The command a `train meta` command line (after those two words) describes, checked; nothing written."""
    from fluxrl.commands import parsing

    command = parsing.parse(TrainMeta, list(args), prog=PROG)
    check(command)
    return command


def algorithm_and_config(command: TrainMeta):
    """(algorithm, config) the command trains: plain A2C for --inner-steps 0, else the meta-gradient."""
    if command.inner_steps == 0:
        return a2c.ALGORITHM, command.agent
    names = tuple(name.strip() for name in command.meta_params.split(",") if name.strip())
    return metagrad.ALGORITHM, metagrad.MetaConfig(
        a2c=command.agent, meta_params=names, inner_steps=command.inner_steps, mix=command.mix, kappa=command.kappa,
        meta_lr=command.meta_lr, meta_clip=command.meta_clip, autodiff=command.autodiff, remat=command.remat,
        variance_samples=command.variance_samples, reference_samples=command.reference_samples)


def resolve(command: TrainMeta):
    """(algorithm, config, run options) the command trains."""
    return (*algorithm_and_config(command), command.run)


def check(command: TrainMeta, resume: bool = False) -> None:
    """ConfigError unless the options make a valid config and --out may hold a new run (or, resuming, is one);
    writes nothing."""
    from fluxrl.core.rundir import prepare_out_dir

    if command.inner_steps == 0 and command.mix != "none":
        raise ConfigError("--mix needs --inner-steps of at least 1 (0 trains plain A2C).")
    algorithm_and_config(command)  # raises ConfigError for a bad combination
    if not resume:
        prepare_out_dir(command.run.out, command.run.overwrite)


def execute(command: TrainMeta, resume: bool = False) -> int:
    """Train every seed (or, resuming, the rest of the run), print the summary; exit status 0."""
    from fluxrl.commands.families import train
    from fluxrl.commands.train_gflownet import print_summary

    check(command, resume)
    what = "plain A2C" if command.inner_steps == 0 else (
        f"{command.inner_steps}-step meta-gradients ({command.mix} mixing) on {command.meta_params}")
    steps = a2c.env_steps_per_iteration(command.agent) * command.run.iterations
    print(f"{PROG}: {what}, {command.agent.env}, {command.run.num_seeds} seed(s), {steps:,} env steps each")
    result = train(command, resume)
    print_summary(result.summary, command.run.out)
    return 0

