"""PPO with a tanh-squashed Gaussian policy (Schulman et al. 2017), the baseline of FPO (McAllister et al. 2025).

The policy is an MLP giving the mean of a Gaussian and a learned scale, std = softplus(scale) + 1e-3: by default
one scale per action dimension (rejax's and PureJaxRL's Gaussian policy), with `state_dependent_std` one per state,
from the network's head (the FPO reference's Gaussian baseline, `playground/src/flow_policy/networks.py`,
`gaussian_policy_fwd`). Either way std starts at softplus(0) + 1e-3 ~= 0.69. The rollout samples u ~ N(mean, std^2),
steps the environment with tanh(u) and stores u, so log pi(a | s) = log N(u) - sum_i log(1 - tanh(u_i)^2) is exact
for the action taken (the log-det term cancels in the ratio, which therefore equals the Gaussian one). The
entropy of the squashed policy has no closed form; as the FPO reference (`ppo.py`, lines 311-319) it is estimated
by the Gaussian's entropy plus log|d tanh(u)/du| at one reparameterised sample u per state. The critic is a
separate MLP; everything else (rollouts, GAE, normalisation, epochs) is `rollout.py`'s, shared with FPO.

Defaults are rejax's tuned gymnax Pendulum-v1 PPO (`configs/gymnax/pendulum.yaml`: 100 envs x 100 steps, 10 epochs
x 10 minibatches, Adam 1e-3, grad-norm 10, gamma 0.995, lambda 0.95, clip 0.2, no entropy bonus, value coef 0.5,
swish 64-64, observation normalisation). That file's `total_timesteps: 150_000` is not the length of its run: with
`eval_freq: 2000` below one iteration's 10,000 steps, rejax's `OnPolicyMixin.train` runs ceil(2000 / 10,000) = 1
iteration per evaluation and ceil(150,000 / 2,000) = 75 evaluations, so 75 iterations, 750k env steps. Pendulum is
solved (about -200) only there: measured with rejax 0.1.3's own evaluation (128 episodes of the sampled policy) on
seeds 0-2, rejax reaches -835 / -635 / -386 / -276 (mean) after 15 / 30 / 45 / 75 iterations, these defaults
-807 / -198 / -266 / -228; rejax's PPO differs in value clipping, element-wise gradient clipping, an unsquashed
Gaussian clipped to the bounds and no bootstrap at truncation, so this is no like-for-like comparison. The FPO paper's tuned Gaussian PPO for DM Control is `fluxrl.onpolicy.tuned`'s dmc settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Optional

import equinox as eqx
import jax
import jax.numpy as jnp

from fluxrl.core.config import ConfigError, check_range
from fluxrl.core.nets import MLP
from fluxrl.core.runner import Algorithm
from fluxrl.onpolicy import objectives, rollout
from fluxrl.onpolicy.config import OnPolicyConfig
from fluxrl.onpolicy.rollout import OnPolicyState

# The FPO reference's floor on the standard deviation (networks.py, gaussian_policy_fwd).
MIN_STD = 1e-3
# Small initial mean head so the first policy is centred (CleanRL / PureJaxRL initialise it with gain 0.01).
ACTOR_OUTPUT_SCALE = 0.01


@dataclass(frozen=True)
class PPOConfig(OnPolicyConfig):
    """Gaussian PPO; defaults are rejax's tuned gymnax Pendulum-v1 PPO (module docstring)."""

    TRACED_FIELDS: ClassVar[tuple[str, ...]] = OnPolicyConfig.TRACED_FIELDS + ("entropy_coef",)  # a loss weight

    env: str = "pendulum"
    """Environment (`fluxrl.envs.control.registry`; default gymnax Pendulum-v1, whose tuned settings the other
    defaults are; they also solve the grid world in 20 iterations)."""
    entropy_coef: float = 0.0
    """Weight of the entropy bonus (>= 0)."""
    state_dependent_std: bool = False
    """The network's head gives the std (the FPO reference); off: one learned std per action dimension (rejax)."""
    fixed_std: Optional[float] = None
    """A fixed, unlearned std of the Gaussian (the official grid world's covariance diag(0.5): std 0.7071); None:
    learned."""
    mean_output_scale: float = ACTOR_OUTPUT_SCALE
    """The mean head's initial weights are multiplied by this (0.01 as CleanRL / PureJaxRL; 1: the plain init)."""

    def __post_init__(self):
        super().__post_init__()
        check_range("entropy_coef", self.entropy_coef, 0.0)
        check_range("mean_output_scale", self.mean_output_scale, 0.0, low_open=True)
        if self.fixed_std is not None:
            check_range("fixed_std", self.fixed_std, 0.0, low_open=True)
            if self.state_dependent_std:
                raise ConfigError("fixed_std and state_dependent_std exclude each other: a fixed std is not given by "
                                  "the network's head.")


class GaussianActor(eqx.Module):
    """The policy network and, with a learned state-independent std, its pre-softplus scale vector (else empty);
    a fixed std and whether the environment gets tanh of the sample are static."""

    net: MLP
    scale: jax.Array
    fixed_std: Optional[float] = eqx.field(static=True, default=None)
    squash: bool = eqx.field(static=True, default=True)


def distribution(actor: GaussianActor, observation: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(mean, std) of the (pre-squash) Gaussian at observations [..., O]."""
    out = actor.net(observation)
    if actor.fixed_std is not None:
        return out, jnp.full(out.shape, actor.fixed_std, out.dtype)
    action_size = out.shape[-1] if actor.scale.size else out.shape[-1] // 2
    mean = out[..., :action_size]
    scale = jnp.broadcast_to(actor.scale, mean.shape) if actor.scale.size else out[..., action_size:]
    return mean, jax.nn.softplus(scale) + MIN_STD


def tanh_log_det(pre_tanh: jax.Array) -> jax.Array:
    """log(d tanh(u) / du) = log(1 - tanh(u)^2), in the form 2 (log 2 - u - softplus(-2u)) exact for large |u|."""
    return 2.0 * (math.log(2.0) - pre_tanh - jax.nn.softplus(-2.0 * pre_tanh))


def squashed_log_prob(mean: jax.Array, std: jax.Array, pre_tanh: jax.Array, squash: bool = True) -> jax.Array:
    """log density of a = tanh(u) at u = pre_tanh, u ~ N(mean, diag std^2): log N(u) - sum log(1 - tanh(u)^2);
    without `squash`, log N(u)."""
    gaussian = -0.5 * ((pre_tanh - mean) / std) ** 2 - jnp.log(std) - 0.5 * math.log(2.0 * math.pi)
    return jnp.sum(gaussian - (tanh_log_det(pre_tanh) if squash else 0.0), axis=-1)


def squashed_entropy(mean: jax.Array, std: jax.Array, key: jax.Array, squash: bool = True) -> jax.Array:
    """One-sample estimate of the entropy of tanh(u): H[N(mean, std^2)] + sum log|d tanh/du| at one sample u;
    without `squash`, H[N(mean, std^2)]."""
    gaussian = jnp.sum(0.5 + 0.5 * math.log(2.0 * math.pi) + jnp.log(std), axis=-1)
    if not squash:
        return gaussian
    pre_tanh = mean + std * jax.random.normal(key, mean.shape)
    return gaussian + jnp.sum(tanh_log_det(pre_tanh), axis=-1)


def sample(actor: GaussianActor) -> rollout.Sample:
    """The rollout policy: u ~ N(mean, std^2); the environment gets tanh(u) (or u, unsquashed); u and its log pi are
    stored."""
    def act(observation, key):
        mean, std = distribution(actor, observation)
        pre_tanh = mean + std * jax.random.normal(key, mean.shape)
        env_action = jnp.tanh(pre_tanh) if actor.squash else pre_tanh
        return env_action, pre_tanh, squashed_log_prob(mean, std, pre_tanh, actor.squash)
    return act


def act(actor: GaussianActor, observation: jax.Array) -> jax.Array:
    """The deterministic action tanh(mean), or the mean unsquashed (observations already normalised)."""
    mean = distribution(actor, observation)[0]
    return jnp.tanh(mean) if actor.squash else mean


def make_data(config: PPOConfig) -> Any:
    """The environment's parameters, shared read-only by every seed."""
    return rollout.make_env(config.env).default_params()


def init(config: PPOConfig, env_params: Any, key: jax.Array) -> OnPolicyState:
    """Fresh actor and critic, Adam, no observation statistics, fresh environments."""
    env = rollout.make_env(config.env)
    actor_key, critic_key, key = jax.random.split(key, 3)
    outputs = env.action_size * (2 if config.state_dependent_std else 1)
    net = MLP((env.observation_size, *config.actor_hidden, outputs), actor_key, config.activation, config.network_init,
              config.mean_output_scale)
    learned_scale = not config.state_dependent_std and config.fixed_std is None
    scale = jnp.zeros(env.action_size if learned_scale else 0)
    critic = MLP((env.observation_size, *config.critic_hidden, 1), critic_key, config.activation, config.network_init)
    actor = GaussianActor(net, scale, config.fixed_std, config.squash == "tanh")
    return rollout.init_state(config, env_params, actor, critic, key)


def update(config: PPOConfig, env_params: Any, state: OnPolicyState) -> tuple[OnPolicyState, dict]:
    """One rollout and its epochs of clipped-ratio updates."""
    def actor_loss(actor, batch: rollout.Batch, key):
        mean, std = distribution(actor, batch.transition.observation)
        log_ratio = squashed_log_prob(mean, std, batch.transition.action, actor.squash) - batch.transition.extras
        loss, metrics = objectives.clipped_surrogate(log_ratio, batch.advantage, config.clip_eps)
        entropy = jnp.mean(squashed_entropy(mean, std, key, actor.squash))
        return loss - config.entropy_coef * entropy, {**metrics, "entropy": entropy}

    return rollout.iterate(config, env_params, state, sample, actor_loss)


ALGORITHM = Algorithm(name="ppo", config_type=PPOConfig, init=init, update=update, make_data=make_data,
                      progress_metrics=("episode_return",), counters=("env_steps",), throughput_unit="env_steps",
                      work_per_iteration=lambda c: c.num_envs * c.num_steps)
