"""Each GFlowNet environment's options, as a frozen config that validates itself and builds (env, env_params).

The env is static (a hashable dataclass of sizes, part of the compiled program); env_params are the reward's
arrays, passed to the program as data. `build()` is cached per config: a structure-learning score table costs
2^d BGe evaluations, and every part of a run asks for the env again.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from fluxrl.core.config import ConfigError, check_choice, check_range
from fluxrl.envs.gflownet.hypergrid import REWARD_PRESETS


@dataclass(frozen=True)
class HypergridConfig:
    """A D-dimensional hypergrid of side H and its reward (Bengio et al. 2021)."""

    ndim: int = 2
    """Number of dimensions D."""
    height: int = 8
    """Side length H (>= 2)."""
    reward: str = "standard"
    """Reward preset: standard (R0=1e-3, R1=0.5, R2=2) or hard (R0=1e-4, R1=1, R2=3)."""
    r0: float | None = None
    """Override the preset's R0 (> 0)."""
    r1: float | None = None
    """Override the preset's R1 (>= 0)."""
    r2: float | None = None
    """Override the preset's R2 (>= 0)."""

    def __post_init__(self):
        check_choice("reward", self.reward, tuple(REWARD_PRESETS))
        self.build()  # the env and the reward check their own fields

    def build(self) -> tuple[Any, Any]:
        """(static env, reward parameters)."""
        return _build(self)


@dataclass(frozen=True)
class BitSequenceConfig:
    """Non-autoregressive bit sequences of n bits in k-bit words, rewarded by distance to a seeded mode set."""

    n: int = 120
    """Length in bits."""
    k: int = 8
    """Bits per word (one action fills one k-bit slot)."""
    num_modes: int = 60
    """Number of modes."""
    beta: float = 2.0
    """log R(x) = -beta * (Hamming distance to the nearest mode), beta >= 0."""
    mode_seed: int = 0
    """Seed of the mode set and of the test set."""
    test_set_size: int = 7200
    """Test sequences used for the Spearman correlation (the reference uses all 7200)."""
    test_backward_samples: int = 10
    """Backward trajectories per test sequence in the log p estimate."""

    def __post_init__(self):
        check_range("beta", self.beta, 0.0)
        check_range("test_set_size", self.test_set_size, 1)
        check_range("test_backward_samples", self.test_backward_samples, 1)
        self.build()

    def build(self) -> tuple[Any, Any]:
        """(static env, reward parameters: the mode set and beta)."""
        return _build(self)


@dataclass(frozen=True)
class ParenthesesConfig:
    """Balanced parentheses of at most max_tokens tokens (the LGGFN paper's task)."""

    max_tokens: int = 32
    """Maximum sequence length in tokens (2..36)."""
    unique_mode_samples: int = 16_000
    """Samples of the trained policy behind `unique_modes_sampled` (the paper: 1000 batches of 16); 0: skip."""
    rewarded: str = "full"
    """Balanced sequences that earn the top reward: full (filling every slot, as the official code) or any."""

    def __post_init__(self):
        check_range("unique_mode_samples", self.unique_mode_samples, 0)
        check_choice("rewarded", self.rewarded, ("full", "any"))
        self.build()

    def build(self) -> tuple[Any, Any]:
        """(static env, the paper's reward parameters)."""
        return _build(self)


@dataclass(frozen=True)
class StructureConfig:
    """Bayesian structure learning of a DAG from a seeded linear-Gaussian dataset, BGe score."""

    num_nodes: int = 5
    """Variables (nodes) of the DAG; exact metrics up to 5."""
    num_samples: int = 100
    """Observations in the dataset."""
    graph_seed: int = 0
    """Seed of the ground-truth graph and its data."""
    edge_weights: str = "ones"
    """Ground-truth edge weights: ones (what the official LGGFN sampler applies), normal (N(0, 1)) or
    signed_uniform (+-U[0.5, 2])."""
    noise_std: float = 0.1
    """Standard deviation of the observation noise (> 0; the official code's is 0.1)."""
    score_reference: str = "best"
    """BGe log R relative to: best (each node's best parent set, log R <= 0), empty (the empty graph) or none
    (the raw BGe log marginal likelihood, as the official code). The posterior is the same for all three."""

    def __post_init__(self):
        check_range("num_nodes", self.num_nodes, 1)
        check_range("num_samples", self.num_samples, 1)
        check_choice("score_reference", self.score_reference, ("best", "empty", "none"))
        self.build()

    def build(self) -> tuple[Any, Any]:
        """(static env, the BGe local-score table)."""
        return _build(self)


@dataclass(frozen=True)
class CustomEnvConfig:
    """A user's environment meeting the `DAGEnv` protocol (fluxrl.envs.gflownet.base), made by a factory named by
    import path: `CustomEnvConfig("my_package.tasks:make_env", (("length", 6),))` calls
    `my_package.tasks.make_env(length=6)`. It trains with every GFlowNet algorithm; metrics are exact where the
    environment is enumerable (`all_states`, `state_index`, `terminal_states`), sampling metrics otherwise. The
    path is stored with the run, so resuming and `fluxrl.load` rebuild the same environment."""

    factory: str = ""
    """Import path `module:callable` of a function (or class) returning the environment."""
    args: tuple[tuple[str, Any], ...] = ()
    """Keyword arguments of the factory, as (name, value) pairs (JSON values)."""

    def __post_init__(self):
        if ":" not in self.factory:
            raise ConfigError(f"factory must be an import path module:callable, got {self.factory!r}.")
        object.__setattr__(self, "args", tuple(_pair(item) for item in self.args))
        self.build()

    @property
    def name(self) -> str:
        """The factory's path, naming the environment in reports and run directories."""
        return self.factory

    def build(self) -> tuple[Any, Any]:
        """(the environment, its default_params())."""
        return _build(self)


EnvConfig = HypergridConfig | BitSequenceConfig | ParenthesesConfig | StructureConfig | CustomEnvConfig

# What a DAGEnv must have, checked when a custom environment is built.
DAG_ENV_ATTRIBUTES = ("num_actions", "num_backward_actions", "max_length", "exit_action", "obs_size",
                      "default_params", "reset", "forward_mask", "backward_mask", "step", "backward_step",
                      "backward_action", "is_terminal", "log_reward", "obs")


def env_name(config: EnvConfig) -> str:
    """The short name of an environment config's environment: hypergrid, bitseq, parentheses, structure, or a
    custom environment's factory path."""
    if isinstance(config, CustomEnvConfig):
        return config.name
    return {HypergridConfig: "hypergrid", BitSequenceConfig: "bitseq", ParenthesesConfig: "parentheses",
            StructureConfig: "structure"}[type(config)]


def _pair(item: Any) -> tuple[str, Any]:
    """(name, value) from a pair or from the command line's "name=value" (the value read as JSON, else text);
    lists become tuples so that the config stays hashable."""
    import json

    if isinstance(item, str):
        name, has_value, text = item.partition("=")
        if not has_value or not name:
            raise ConfigError(f"an environment argument must be name=value, got {item!r}.")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        item = (name, value)
    name, value = item
    return str(name), tuple(value) if isinstance(value, list) else value


def _build_custom(config: CustomEnvConfig) -> tuple[Any, Any]:
    """The user's environment from its factory, checked against the DAGEnv protocol."""
    from fluxrl.core.config import import_object

    factory = import_object(config.factory, "environment factory")
    try:
        env = factory(**dict(config.args))
    except TypeError as error:
        raise ConfigError(f"{config.factory}({', '.join(f'{k}={v!r}' for k, v in config.args)}) failed: "
                          f"{error}.") from None
    missing = [name for name in DAG_ENV_ATTRIBUTES if not hasattr(env, name)]
    if missing:
        raise ConfigError(f"{config.factory} made a {type(env).__name__}, which is no DAGEnv: it lacks "
                          f"{', '.join(missing)} (see fluxrl.envs.gflownet.base.DAGEnv).")
    return env, env.default_params()


@functools.lru_cache(maxsize=16)
def _build(config: EnvConfig) -> tuple[Any, Any]:
    if isinstance(config, CustomEnvConfig):
        return _build_custom(config)
    if isinstance(config, HypergridConfig):
        from fluxrl.envs.gflownet.hypergrid import Hypergrid, hypergrid_params

        return Hypergrid(config.ndim, config.height), hypergrid_params(config.reward, config.r0, config.r1,
                                                                       config.r2)
    if isinstance(config, BitSequenceConfig):
        from fluxrl.envs.gflownet.bitseq import BitSequence, bitseq_params

        env = BitSequence(n=config.n, k=config.k, num_modes=config.num_modes, mode_seed=config.mode_seed)
        return env, bitseq_params(env, beta=config.beta)
    if isinstance(config, ParenthesesConfig):
        from fluxrl.envs.gflownet.parentheses import Parentheses

        env = Parentheses(config.max_tokens, config.rewarded)
        return env, env.default_params()
    from fluxrl.envs.gflownet.structure import structure_env, structure_params

    env = structure_env(config.num_nodes, config.num_samples, config.graph_seed, edge_weights=config.edge_weights,
                        noise_std=config.noise_std)
    return env, structure_params(env, reference=config.score_reference)
