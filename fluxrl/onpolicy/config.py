"""The settings Gaussian PPO and FPO share, and their checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from fluxrl.core.config import ConfigError, check_choice, check_range
from fluxrl.core.nets import ACTIVATIONS, INITS
from fluxrl.onpolicy.rollout import TIME_LIMITS


def check_batch(num_envs: int, num_steps: int, minibatches: int) -> None:
    """ConfigError unless the rollout's num_envs * num_steps transitions split evenly into `minibatches`."""
    if (num_envs * num_steps) % minibatches:
        raise ConfigError(f"minibatches must divide num_envs * num_steps = {num_envs * num_steps}, "
                          f"got {minibatches}.")


@dataclass(frozen=True)
class OnPolicyConfig:
    """The settings Gaussian PPO and FPO share: environment, rollout, PPO-style optimisation, critic."""

    # Swept, these become one vmapped axis of a compiled program (`fluxrl.sweep.traced`): each enters the update
    # only as a number in array arithmetic (Adam's step size, the clip range, GAE, the loss weights, the rewards).
    TRACED_FIELDS: ClassVar[tuple[str, ...]] = ("lr", "clip_eps", "gamma", "gae_lambda", "value_coef",
                                                "reward_scale")

    env: str = "pendulum"
    """Environment: a name in `fluxrl.envs.control.registry.ENVS`, a gymnax id, or a factory's import path."""
    num_envs: int = 100
    """Environments stepped in parallel."""
    num_steps: int = 100
    """Steps of every environment per iteration (the rollout length)."""
    epochs: int = 10
    """Passes over each rollout."""
    minibatches: int = 10
    """Minibatches per epoch; must divide num_envs * num_steps."""
    lr: float = 1e-3
    """Adam learning rate (> 0)."""
    anneal_iterations: int = 0
    """Anneal the learning rate linearly to 0 over this many iterations (set it to the run's iterations); 0 keeps
    it constant."""
    clip_eps: float = 0.2
    """Clipping epsilon of the ratio (and of the value change when clip_value_loss), in (0, 1)."""
    gamma: float = 0.995
    """Discount, in [0, 1]."""
    gae_lambda: float = 0.95
    """GAE lambda, in [0, 1]."""
    value_coef: float = 0.5
    """Weight of the value loss 0.5 mean (V - target)^2 in the total loss (>= 0)."""
    max_grad_norm: float = 10.0
    """Gradient-norm clip (> 0; inf: none), over actor and critic together or each network apart (grad_clip)."""
    grad_clip: str = "global"
    """global (one norm over both networks) or per-network (each clipped on its own, the official grid world's two
    optimisers)."""
    adam_eps: float = 1e-5
    """Adam's epsilon (PureJaxRL 1e-5; PyTorch and optax default 1e-8) (> 0)."""
    target_kl: Optional[float] = None
    """Stop the epochs of an iteration once the last minibatch's KL estimate exceeds this (PPO's early stop, the
    official grid-world Gaussian's 0.02); None: never."""
    advantage_normalization: str = "minibatch"
    """Advantages standardised per minibatch or once over the whole batch (the official grid world)."""
    time_limit: str = "bootstrap"
    """At a time limit: bootstrap from the final observation's value; terminate (no value after it, the official grid
    world); or zero (the step's TD error, advantage and value loss set to 0, the official Playground code)."""
    gae_chunk: int = 0
    """0: advantages once per rollout. L > 0: recomputed with the current critic for every minibatch, over chunks of
    L consecutive steps of one environment, minibatches made of whole chunks (the official Playground code, L = 30)."""
    squash: str = "tanh"
    """The environment gets tanh of the policy's sample, or the raw sample (none: the environment clips, as the
    official grid world)."""
    network_init: str = "lecun"
    """Weights of both networks (fluxrl.core.nets.INITS): lecun (LeCun-uniform weights, zero biases), torch
    (PyTorch's nn.Linear default, uniform +-1/sqrt(fan_in) weights and biases, the official grid world), equinox or
    lecun_normal."""
    clip_value_loss: bool = False
    """PPO2's clipped value loss; off as in the FPO reference (Andrychowicz et al. 2021 find it does not help)."""
    normalize_observations: bool = True
    """Normalise observations with running mean and variance of everything seen."""
    reward_scale: float = 1.0
    """Rewards are multiplied by this in GAE (not in the reported returns) (> 0)."""
    actor_hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the policy."""
    critic_hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the critic."""
    activation: str = "swish"
    """Hidden activation: tanh, relu or swish (= SiLU, the FPO reference's)."""

    def __post_init__(self):
        for name in ("num_envs", "num_steps", "epochs", "minibatches"):
            check_range(name, getattr(self, name), 1)
        check_range("anneal_iterations", self.anneal_iterations, 0)
        check_range("gae_chunk", self.gae_chunk, 0)
        for name in ("lr", "max_grad_norm", "reward_scale", "adam_eps"):
            check_range(name, getattr(self, name), 0.0, low_open=True)
        check_range("value_coef", self.value_coef, 0.0)
        check_range("clip_eps", self.clip_eps, 0.0, 1.0, low_open=True, high_open=True)
        check_range("gamma", self.gamma, 0.0, 1.0)
        check_range("gae_lambda", self.gae_lambda, 0.0, 1.0)
        for name in ("actor_hidden", "critic_hidden"):
            for size in getattr(self, name):
                check_range(name, size, 1)
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        check_choice("grad_clip", self.grad_clip, ("global", "per-network"))
        check_choice("advantage_normalization", self.advantage_normalization, ("minibatch", "batch"))
        check_choice("time_limit", self.time_limit, TIME_LIMITS)
        check_choice("squash", self.squash, ("tanh", "none"))
        check_choice("network_init", self.network_init, tuple(INITS))
        if self.target_kl is not None:
            check_range("target_kl", self.target_kl, 0.0, low_open=True)
        if self.gae_chunk:
            if self.num_steps % self.gae_chunk:
                raise ConfigError(f"gae_chunk must divide num_steps = {self.num_steps}, got {self.gae_chunk}.")
            chunks = self.num_envs * self.num_steps // self.gae_chunk
            if chunks % self.minibatches:
                raise ConfigError(f"minibatches must divide the rollout's {chunks} chunks of gae_chunk = "
                                  f"{self.gae_chunk} steps, got {self.minibatches}.")
            if self.clip_value_loss:
                raise ConfigError("clip_value_loss needs the rollout's values to clip against (gae_chunk 0); with "
                                  "gae_chunk the values are recomputed in every minibatch.")
            if self.advantage_normalization == "batch":
                raise ConfigError("advantage_normalization batch needs advantages computed once per rollout "
                                  "(gae_chunk 0); with gae_chunk they are new in every minibatch.")
        else:
            check_batch(self.num_envs, self.num_steps, self.minibatches)
