"""The policy network's options and its construction: an MLP, or a transformer where the states are sequences.

A GFlowNet config names its network or leaves it None for the environment's default (bit sequences: the
transformer of Tiapkin et al. 2024; every other environment: an MLP). The transformer reads bit sequences' slots
(`SlotTransformerPolicy`), or, for an environment that builds a sequence left to right and gives its `tokens`
(parentheses), the prefix, causally as GPT-2 (`PrefixTransformerPolicy`). The network's static part (shapes,
activation functions) is fixed by the config and cached; its arrays live in the train state.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import equinox as eqx
import jax

from fluxrl.core.config import ConfigError, check_range
from fluxrl.core.nets import split_params
from fluxrl.envs.gflownet.configs import BitSequenceConfig, EnvConfig
from fluxrl.gflownet.policy import MLPPolicy, PrefixTransformerPolicy, SlotTransformerPolicy


@dataclass(frozen=True)
class MLPConfig:
    """An MLP over the observation with forward, backward and log-flow heads."""

    hidden: int = 256
    """Units per hidden layer."""
    layers: int = 2
    """Number of hidden layers."""

    def __post_init__(self):
        check_range("hidden", self.hidden, 1)
        check_range("layers", self.layers, 1)


@dataclass(frozen=True)
class TransformerConfig:
    """A transformer over the state's tokens: bit sequences' slots, or a sequence's prefix (parentheses)."""

    d_model: int = 64
    """Model width (a multiple of heads)."""
    heads: int = 8
    """Attention heads."""
    layers: int = 3
    """Encoder layers."""

    def __post_init__(self):
        check_range("d_model", self.d_model, 1)
        check_range("heads", self.heads, 1)
        check_range("layers", self.layers, 1)
        if self.d_model % self.heads:
            raise ConfigError(f"d_model must be a multiple of heads, got d_model={self.d_model}, heads={self.heads}.")


NetworkConfig = MLPConfig | TransformerConfig


def resolve_network(env_config: EnvConfig, network: NetworkConfig | None) -> NetworkConfig:
    """The network a config asks for, or its environment's default when it asks for none."""
    if network is None:
        return TransformerConfig() if isinstance(env_config, BitSequenceConfig) else MLPConfig()
    if isinstance(network, TransformerConfig) and not isinstance(env_config, BitSequenceConfig):
        env = env_config.build()[0] if hasattr(env_config, "build") else env_config
        missing = [name for name in ("tokens", "vocab_size", "max_tokens") if not hasattr(env, name)]
        if missing:
            raise ConfigError("network must be an MLP for this environment: the transformer reads token sequences "
                              f"and the environment has no {', '.join(missing)}.")
    return network


def build_policy(network: NetworkConfig, env, key: jax.Array):
    """A freshly initialised policy network (arrays and static part together) for `env`."""
    if isinstance(network, TransformerConfig):
        kind = PrefixTransformerPolicy if hasattr(env, "tokens") else SlotTransformerPolicy
        return kind(env, network.d_model, network.heads, network.layers, key)
    return MLPPolicy(env, network.hidden, network.layers, key)


def init_policy_params(network: NetworkConfig, env, key: jax.Array) -> Any:
    """The arrays of a freshly initialised policy network."""
    return split_params(build_policy(network, env, key))[0]


@functools.lru_cache(maxsize=32)
def policy_static(network: NetworkConfig, env) -> Any:
    """The static part of the policy network (everything but its arrays), to `eqx.combine` with them."""
    # Shapes only: the static part needs no real weights, and initialising a transformer costs seconds.
    abstract = eqx.filter_eval_shape(build_policy, network, env, jax.random.PRNGKey(0))
    return split_params(abstract)[1]


def policy_of_params(network: NetworkConfig, env, params: Any):
    """The callable policy network of some arrays."""
    return eqx.combine(params, policy_static(network, env))
