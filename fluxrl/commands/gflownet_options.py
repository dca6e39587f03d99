"""The command-line view of the GFlowNet configs: which subcommand picks which config, and the flag names.

`fluxrl train gflownet ALGORITHM [ENVIRONMENT] [NETWORK] [EXPLORATION] [OPTIONS]` walks a tree of tyro
subcommands, so the help of one choice shows only its own options, grouped. The configs themselves live with
their algorithms; the classes here only re-declare a field to give it the flag name it had in the flat config
of earlier versions (`--lambda`, `--replay-capacity`, `--transformer-layers`, `--munchausen-l0`, ...), hide a
field the subcommand already fixes (`loss`), or accept a flag old command lines pass. `to_config` turns a parsed
view back into the algorithm's own config.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Optional, Union

import tyro

from fluxrl.core.config import check_range
from fluxrl.core.runner import Algorithm
from fluxrl.envs.gflownet.configs import (BitSequenceConfig, CustomEnvConfig, HypergridConfig, ParenthesesConfig,
                                          StructureConfig)
from fluxrl.gflownet import balance, soft_dqn
from fluxrl.gflownet.algorithms import NAMES
from fluxrl.gflownet.lggfn import LGGFNConfig
from fluxrl.gflownet.networks import MLPConfig, TransformerConfig
from fluxrl.gflownet.sagfn import SAGFNConfig
from fluxrl.gflownet.teacher import TeacherConfig
from fluxrl.gflownet.trajectory_replay import ReplayConfig

Sub = tyro.conf.subcommand
Suppress = tyro.conf.Suppress


def flag(name: str) -> Any:
    """The flag `--name` for a field whose own name differs (the name it had in the flat config)."""
    return tyro.conf.arg(name=name)


def group(title: str) -> Any:
    """A nested choice whose options appear under "<title> options" in the help, with unprefixed flags."""
    return tyro.conf.arg(name=title, prefix_name=False)

ALGORITHM_NAMES = NAMES  # the choices of the first subcommand
ENV_NAMES = ("hypergrid", "bitseq", "parentheses", "structure", "custom")
# The network each environment gets when a command line names none (the choice `resolve_network` makes).
DEFAULT_NETWORK = {"hypergrid": "mlp", "bitseq": "transformer", "parentheses": "mlp", "structure": "mlp",
                   "custom": "mlp"}


@dataclass(frozen=True)
class CustomEnvOptions(CustomEnvConfig):
    """Your own environment (a DAGEnv) made by `--factory module:callable`, `--env-arg name=value` per argument."""

    factory: Annotated[str, flag("factory")] = ""
    args: Annotated[tuple[str, ...], flag("env_arg"), tyro.conf.UseAppendAction] = ()
    """A keyword argument of the factory, name=value (the value read as JSON, else as text); repeat the flag."""

EnvChoice = Annotated[Union[
    Annotated[HypergridConfig, Sub("hypergrid")],
    Annotated[BitSequenceConfig, Sub("bitseq")],
    Annotated[ParenthesesConfig, Sub("parentheses")],
    Annotated[StructureConfig, Sub("structure")],
    Annotated[CustomEnvOptions, Sub("custom")],
], group("environment")]


@dataclass(frozen=True)
class TransformerOptions(TransformerConfig):
    """A transformer over the state's tokens: bit sequences' slots, or a sequence's prefix (parentheses)."""

    layers: Annotated[int, flag("transformer_layers")] = TransformerConfig.layers


NetworkChoice = Annotated[Union[
    Annotated[None, Sub("auto", description="The environment's default: transformer on bitseq, else an MLP.")],
    Annotated[MLPConfig, Sub("mlp")],
    Annotated[TransformerOptions, Sub("transformer")],
], group("network")]


@dataclass(frozen=True)
class ReplayOptions(ReplayConfig):
    """Replay of the main model's past trajectories."""

    capacity: Annotated[int, flag("replay_capacity")] = ReplayConfig.capacity


@dataclass(frozen=True)
class LGGFNOptions(LGGFNConfig):
    """Loss-guided exploration by an auxiliary GFlowNet (LGGFN)."""

    lam: Annotated[float, flag("lambda")] = LGGFNConfig.lam

    def __post_init__(self):
        check_range("lambda", self.lam, 0.0, low_open=True)  # named as the flag, not the field
        super().__post_init__()


@dataclass(frozen=True)
class TeacherOptions(TeacherConfig):
    """Exploration by an auxiliary GFlowNet rewarded by R * loss_main^lambda (adaptive teacher)."""

    loss_exponent: Annotated[float, flag("lambda")] = TeacherConfig.loss_exponent

    def __post_init__(self):
        check_range("lambda", self.loss_exponent, 0.0, low_open=True)
        super().__post_init__()


@dataclass(frozen=True)
class SAGFNOptions(SAGFNConfig):
    """Novelty-seeking exploration by an auxiliary GFlowNet with an RND bonus (SA-GFN)."""

    beta_e: Annotated[float, flag("sagfn_beta_e")] = SAGFNConfig.beta_e
    beta_i: Annotated[float, flag("sagfn_beta_i")] = SAGFNConfig.beta_i
    beta_sn: Annotated[float, flag("sagfn_beta_sn")] = SAGFNConfig.beta_sn


ExploreChoice = Annotated[Union[
    Annotated[None, Sub("none", description="On-policy batches only (epsilon / temperature still apply).")],
    Annotated[ReplayOptions, Sub("replay")],
    Annotated[LGGFNOptions, Sub("lggfn")],
    Annotated[TeacherOptions, Sub("teacher")],
    Annotated[SAGFNOptions, Sub("sagfn")],
], group("exploration")]


@dataclass(frozen=True)
class SubTBOptions(balance.BalanceConfig):
    """Sub-trajectory balance (Madan et al. 2023), optionally with an exploration strategy."""

    env: EnvChoice = field(default_factory=HypergridConfig)
    network: NetworkChoice = None
    loss: Suppress[str] = "subtb"
    explore: ExploreChoice = None

    def __post_init__(self):
        pass  # BalanceConfig checks the exact type of `explore`: the config `to_config` builds is validated


@dataclass(frozen=True)
class TBOptions(SubTBOptions):
    """Trajectory balance (Malkin et al. 2022), optionally with an exploration strategy."""

    loss: Suppress[str] = "tb"
    subtb_lambda: Suppress[float] = balance.BalanceConfig.subtb_lambda


@dataclass(frozen=True)
class DBOptions(TBOptions):
    """Detailed balance (Bengio et al. 2023), optionally with an exploration strategy."""

    loss: Suppress[str] = "db"


@dataclass(frozen=True)
class MDQNOptions(soft_dqn.SoftDQNConfig):
    """Munchausen DQN on a dueling Q-network (Tiapkin et al. 2024); its own prioritised replay."""

    env: EnvChoice = field(default_factory=HypergridConfig)
    network: NetworkChoice = None
    l0: Annotated[Optional[float], flag("munchausen_l0")] = None
    backward_policy: Literal["uniform"] = "uniform"
    """Backward policy P_B: always uniform in soft RL (it defines the reward); accepted for old command lines."""


@dataclass(frozen=True)
class SoftDQNOptions(MDQNOptions):
    """Soft DQN on a dueling Q-network (Tiapkin et al. 2024); its own prioritised replay."""

    munchausen_alpha: Suppress[float] = 0.0
    l0: Suppress[Optional[float]] = None


AlgorithmChoice = Annotated[Union[
    Annotated[TBOptions, Sub("tb")],
    Annotated[DBOptions, Sub("db")],
    Annotated[SubTBOptions, Sub("subtb")],
    Annotated[SoftDQNOptions, Sub("sdqn")],
    Annotated[MDQNOptions, Sub("mdqn")],
], group("algorithm")]


def to_config(options: Any) -> tuple[Algorithm, Any]:
    """(algorithm, its own config) of a parsed command-line view."""
    config = _plain(options)
    algorithm = balance.ALGORITHM if isinstance(config, balance.BalanceConfig) else soft_dqn.ALGORITHM
    return algorithm, config


def _plain(value: Any) -> Any:
    """The algorithm's own config class for a view (recursively): fields of the base, extra flags dropped."""
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        return value
    base = next(cls for cls in type(value).__mro__ if cls.__module__ != __name__)
    return base(**{f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(base)})
