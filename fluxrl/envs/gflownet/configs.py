"""Each GFlowNet environment's options, as a frozen config that validates itself and builds (env, env_params).

The env is static (a hashable dataclass of sizes, part of the compiled program); env_params are the reward's
arrays, passed to the program as data. `build()` is cached per config: a structure-learning score table costs
2^d BGe evaluations, and every part of a run asks for the env again.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from fluxrl.core.config import check_choice, check_range
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


EnvConfig = HypergridConfig | BitSequenceConfig | ParenthesesConfig | StructureConfig


def env_name(config: EnvConfig) -> str:
    """The short name of an environment config's environment: hypergrid, bitseq, parentheses or structure."""
    return {HypergridConfig: "hypergrid", BitSequenceConfig: "bitseq", ParenthesesConfig: "parentheses",
            StructureConfig: "structure"}[type(config)]


@functools.lru_cache(maxsize=16)
def _build(config: EnvConfig) -> tuple[Any, Any]:
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
