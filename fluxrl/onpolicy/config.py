"""The settings Gaussian PPO and FPO share, and their checks."""

from __future__ import annotations

from dataclasses import dataclass

from fluxrl.core.config import ConfigError, check_choice, check_range
from fluxrl.onpolicy.rollout import ACTIVATIONS


def check_batch(num_envs: int, num_steps: int, minibatches: int) -> None:
    """ConfigError unless the rollout's num_envs * num_steps transitions split evenly into `minibatches`."""
    if (num_envs * num_steps) % minibatches:
        raise ConfigError(f"minibatches must divide num_envs * num_steps = {num_envs * num_steps}, "
                          f"got {minibatches}.")


@dataclass(frozen=True)
class OnPolicyConfig:
    """The settings Gaussian PPO and FPO share: environment, rollout, PPO-style optimisation, critic."""

    env: str = "pendulum"
    """Environment name in `fluxrl.onpolicy.rollout.ENVS`."""
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
    """Global gradient-norm clip over actor and critic together (> 0)."""
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
        for name in ("lr", "max_grad_norm", "reward_scale"):
            check_range(name, getattr(self, name), 0.0, low_open=True)
        check_range("value_coef", self.value_coef, 0.0)
        check_range("clip_eps", self.clip_eps, 0.0, 1.0, low_open=True, high_open=True)
        check_range("gamma", self.gamma, 0.0, 1.0)
        check_range("gae_lambda", self.gae_lambda, 0.0, 1.0)
        for name in ("actor_hidden", "critic_hidden"):
            for size in getattr(self, name):
                check_range(name, size, 1)
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        check_batch(self.num_envs, self.num_steps, self.minibatches)
