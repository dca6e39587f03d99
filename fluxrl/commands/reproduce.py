"""`fluxrl reproduce lggfn|softrl|offline|cnf|fpo|metagrad`: rerun a paper's comparisons (see `fluxrl/experiments/`) and print the report."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

import tyro

from fluxrl.core.config import ConfigError, check_range


@dataclass(frozen=True)
class ReproduceOptions:
    """What every reproduction takes."""

    out: str
    """Directory for the runs, the plots and report.md."""
    seeds: int = 3
    """Seeds per method (vmapped)."""
    scale: float = 1.0
    """Multiply every study's iterations by this (below 1: a quicker, smaller protocol, named in the report)."""
    studies: tuple[str, ...] = ()
    """Studies to run (default: all of the reproduction's studies)."""
    progress: bool = True
    """Show progress bars."""
    executor: Literal["local", "ray"] = "local"
    """Where the study x method runs go: one after another here (local) or as Ray tasks (ray; `pip install
    'fluxrl[ray]'`)."""
    ray_address: Optional[str] = None
    """Ray cluster to join (default: start a local instance using every core)."""
    cpus_per_run: int = 1
    """CPUs Ray reserves for each run."""
    protocol: str = ""
    """The reproduction's protocol (lggfn, softrl, cnf, fpo: cpu-reduced-2 or paper; offline: cpu-reduced-1;
    metagrad: cpu-reduced-2); empty: the default."""

    def __post_init__(self):
        check_range("seeds", self.seeds, 1)
        check_range("scale", self.scale, 0.0, low_open=True)
        check_range("cpus_per_run", self.cpus_per_run, 1)


@dataclass(frozen=True)
class ReproduceLGGFN(ReproduceOptions):
    """The LGGFN paper's comparisons (Malek et al. 2025) under a reduced CPU protocol, with a report."""

    out: str = "runs/reproduce-lggfn"


@dataclass(frozen=True)
class ReproduceSoftRL(ReproduceOptions):
    """The soft-RL GFlowNet paper's comparisons (M-DQN vs TB / DB / SubTB; Tiapkin et al. 2024), with a report."""

    out: str = "runs/reproduce-softrl"


@dataclass(frozen=True)
class ReproduceOffline(ReproduceOptions):
    """CORL's offline baselines (BC, TD3+BC, IQL, AWAC) on D4RL-style data made locally, with a report."""

    out: str = "runs/reproduce-offline"
    seeds: int = 4
    """Seeds per method (CORL's 4, split evenly over the cores)."""
    data_dir: Optional[str] = None
    """Where the datasets are made or found (default: the one `fluxrl data make` writes to)."""


@dataclass(frozen=True)
class ReproduceCNF(ReproduceOptions):
    """CNF against PLAS, AWAC, IQL and TD3+BC, and the paper's ablations, on D4RL-style data, with a report."""

    out: str = "runs/reproduce-cnf"
    data_dir: Optional[str] = None
    """Where the datasets are made or found (default: the one `fluxrl data make` writes to)."""
    models_dir: Optional[str] = None
    """Where the pre-trained flows and VAEs are cached (default: under the user's cache directory)."""


@dataclass(frozen=True)
class ReproduceFPO(ReproduceOptions):
    """FPO against Gaussian PPO (McAllister et al. 2025): saddle-state actions in the grid world, returns and
    ablations in continuous control, with a report."""

    out: str = "runs/reproduce-fpo"
    seeds: int = 5
    """Seeds per method in the grid world (continuous control runs 3)."""


@dataclass(frozen=True)
class ReproduceMetagrad(ReproduceOptions):
    """Multi-step meta-gradients with mixing (Bonnet et al. 2021) on Snake 6x6: variance ratios, return, gamma and lambda."""

    out: str = "runs/reproduce-metagrad"
    seeds: int = 6
    """Seeds per method (split evenly over the cores; the issue asks for 5 or more; 6 cost what 5 do)."""

    def __post_init__(self):
        super().__post_init__()
        check_range("seeds", self.seeds, 2)  # the variance ratio's interval needs a spread over seeds


EXPERIMENTS = {ReproduceLGGFN: "lggfn", ReproduceSoftRL: "softrl", ReproduceOffline: "offline",
               ReproduceCNF: "cnf", ReproduceFPO: "fpo", ReproduceMetagrad: "metagrad"}


@dataclass(frozen=True)
class Reproduce:
    """Rerun a paper's comparisons and write report.md next to the paper's numbers."""

    paper: Annotated[Union[
        Annotated[ReproduceLGGFN, tyro.conf.subcommand("lggfn")],
        Annotated[ReproduceSoftRL, tyro.conf.subcommand("softrl")],
        Annotated[ReproduceOffline, tyro.conf.subcommand("offline")],
        Annotated[ReproduceCNF, tyro.conf.subcommand("cnf")],
        Annotated[ReproduceFPO, tyro.conf.subcommand("fpo")],
        Annotated[ReproduceMetagrad, tyro.conf.subcommand("metagrad")],
    ], tyro.conf.arg(name="reproduction", prefix_name=False)]


def check(command: Reproduce) -> None:
    """ConfigError unless the studies exist and --out can be written; writes nothing."""
    options = command.paper
    names = tuple(study.name for study in _experiment(options).STUDIES)
    unknown = [name for name in options.studies if name not in names]
    if unknown:
        raise ConfigError(f"studies must be among {', '.join(names)}, got {', '.join(unknown)}.")
    path = Path(options.out)
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise ConfigError(f"--out {options.out} is not a writable directory.")
    if options.executor == "ray":
        from fluxrl.sweep.executors import import_ray

        import_ray()  # a missing extra fails here, in one line saying how to install it


def execute(command: Reproduce) -> int:
    """Run the reproduction, print its report; exit status 0."""
    options = command.paper
    extra = {"protocol": options.protocol} if options.protocol else {}  # only reproductions that have protocols
    if isinstance(options, (ReproduceOffline, ReproduceCNF)):
        extra["data_dir"] = options.data_dir
    if isinstance(options, ReproduceCNF):
        extra["models_dir"] = options.models_dir
    from fluxrl.experiments.common import using_executor
    from fluxrl.sweep.executors import make_executor

    executor = make_executor(options.executor, options.ray_address, options.cpus_per_run)
    with using_executor(executor):
        report = _experiment(options).reproduce(options.out, options.seeds, options.scale,
                                                options.studies or None, options.progress, **extra)
    print(report.read_text())
    print(f"report written to {report}")
    return 0


def _experiment(options: ReproduceOptions):
    return importlib.import_module(f"fluxrl.experiments.{EXPERIMENTS[type(options)]}")
