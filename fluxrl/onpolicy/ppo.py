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
-807 / -198 / -266 / -228. `fpo_playground_config()` gives the FPO paper's tuned Gaussian PPO for DM Control instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from fluxrl.core.config import check_range
from fluxrl.core.runner import Algorithm
from fluxrl.onpolicy import rollout
from fluxrl.onpolicy.config import OnPolicyConfig
from fluxrl.onpolicy.rollout import MLP, OnPolicyState

# The FPO reference's floor on the standard deviation (networks.py, gaussian_policy_fwd).
MIN_STD = 1e-3
# Small initial mean head so the first policy is centred (CleanRL / PureJaxRL initialise it with gain 0.01).
ACTOR_OUTPUT_SCALE = 0.01


@dataclass(frozen=True)
class PPOConfig(OnPolicyConfig):
    """Gaussian PPO; defaults are rejax's tuned gymnax Pendulum-v1 PPO (module docstring)."""

    env: str = "pendulum"
    """Environment name in `fluxrl.onpolicy.rollout.ENVS` (gymnax Pendulum-v1, whose tuned settings the other
    defaults are; they also solve the grid world in 20 iterations)."""
    entropy_coef: float = 0.0
    """Weight of the entropy bonus (>= 0)."""
    state_dependent_std: bool = False
    """The network's head gives the std (the FPO reference); off: one learned std per action dimension (rejax)."""

    def __post_init__(self):
        super().__post_init__()
        check_range("entropy_coef", self.entropy_coef, 0.0)


def fpo_playground_config(env: str) -> PPOConfig:
    """The FPO paper's tuned Gaussian PPO for MuJoCo Playground DM Control (`playground/train_ppo.ipynb`: Brax's
    `dm_control_suite_params.brax_ppo_config` with lr 3e-4 and clip 0.1; actor 4 x 32, critic 5 x 256, SiLU). Its
    minibatches of 1024 sequences of 30 steps become minibatches of 30,720 single steps; it clips no gradient. Its
    policy head gives a state-dependent std (`networks.py`, `gaussian_policy_fwd`)."""
    return PPOConfig(env=env, num_envs=2048, num_steps=480, epochs=16, minibatches=32, lr=3e-4, clip_eps=0.1,
                     gamma=0.995, gae_lambda=0.95, value_coef=0.5, entropy_coef=1e-2, max_grad_norm=math.inf,
                     state_dependent_std=True, actor_hidden=(32,) * 4, critic_hidden=(256,) * 5, activation="swish",
                     reward_scale=10.0)


class GaussianActor(eqx.Module):
    """The policy network and, with a state-independent std, its pre-softplus scale vector (else empty)."""

    net: MLP
    scale: jax.Array


def distribution(actor: GaussianActor, observation: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(mean, std) of the pre-squash Gaussian at observations [..., O]."""
    out = actor.net(observation)
    action_size = out.shape[-1] if actor.scale.size else out.shape[-1] // 2
    mean = out[..., :action_size]
    scale = jnp.broadcast_to(actor.scale, mean.shape) if actor.scale.size else out[..., action_size:]
    return mean, jax.nn.softplus(scale) + MIN_STD


def tanh_log_det(pre_tanh: jax.Array) -> jax.Array:
    """log(d tanh(u) / du) = log(1 - tanh(u)^2), in the form 2 (log 2 - u - softplus(-2u)) exact for large |u|."""
    return 2.0 * (math.log(2.0) - pre_tanh - jax.nn.softplus(-2.0 * pre_tanh))


def squashed_log_prob(mean: jax.Array, std: jax.Array, pre_tanh: jax.Array) -> jax.Array:
    """log density of a = tanh(u) at u = pre_tanh, u ~ N(mean, diag std^2): log N(u) - sum log(1 - tanh(u)^2)."""
    gaussian = -0.5 * ((pre_tanh - mean) / std) ** 2 - jnp.log(std) - 0.5 * math.log(2.0 * math.pi)
    return jnp.sum(gaussian - tanh_log_det(pre_tanh), axis=-1)


def squashed_entropy(mean: jax.Array, std: jax.Array, key: jax.Array) -> jax.Array:
    """One-sample estimate of the entropy of tanh(u): H[N(mean, std^2)] + sum log|d tanh/du| at one sample u."""
    gaussian = jnp.sum(0.5 + 0.5 * math.log(2.0 * math.pi) + jnp.log(std), axis=-1)
    pre_tanh = mean + std * jax.random.normal(key, mean.shape)
    return gaussian + jnp.sum(tanh_log_det(pre_tanh), axis=-1)


def sample(actor: GaussianActor) -> rollout.Sample:
    """The rollout policy: u ~ N(mean, std^2); the environment gets tanh(u); u and log pi(tanh(u)) are stored."""
    def act(observation, key):
        mean, std = distribution(actor, observation)
        pre_tanh = mean + std * jax.random.normal(key, mean.shape)
        return jnp.tanh(pre_tanh), pre_tanh, squashed_log_prob(mean, std, pre_tanh)
    return act


def act(actor: GaussianActor, observation: jax.Array) -> jax.Array:
    """The deterministic action tanh(mean) (observations already normalised)."""
    return jnp.tanh(distribution(actor, observation)[0])


def make_data(config: PPOConfig) -> Any:
    """The environment's parameters, shared read-only by every seed."""
    return rollout.make_env(config.env).default_params()


def init(config: PPOConfig, env_params: Any, key: jax.Array) -> OnPolicyState:
    """Fresh actor and critic, Adam, no observation statistics, fresh environments."""
    env = rollout.make_env(config.env)
    actor_key, critic_key, key = jax.random.split(key, 3)
    outputs = env.action_size * (2 if config.state_dependent_std else 1)
    net = MLP((env.observation_size, *config.actor_hidden, outputs), config.activation, actor_key,
              ACTOR_OUTPUT_SCALE)
    scale = jnp.zeros(0 if config.state_dependent_std else env.action_size)
    critic = MLP((env.observation_size, *config.critic_hidden, 1), config.activation, critic_key)
    return rollout.init_state(config, env_params, GaussianActor(net, scale), critic, key)


def update(config: PPOConfig, env_params: Any, state: OnPolicyState) -> tuple[OnPolicyState, dict]:
    """One rollout and its epochs of clipped-ratio updates."""
    def actor_loss(actor, batch: rollout.Batch, key):
        mean, std = distribution(actor, batch.transition.observation)
        log_ratio = squashed_log_prob(mean, std, batch.transition.action) - batch.transition.extras
        loss, metrics = rollout.clipped_surrogate(log_ratio, batch.advantage, config.clip_eps)
        entropy = jnp.mean(squashed_entropy(mean, std, key))
        return loss - config.entropy_coef * entropy, {**metrics, "entropy": entropy}

    return rollout.iterate(config, env_params, state, sample, actor_loss)


ALGORITHM = Algorithm(name="ppo", config_type=PPOConfig, init=init, update=update, make_data=make_data,
                      progress_metrics=("episode_return",), counters=("env_steps",), throughput_unit="env_steps",
                      work_per_iteration=lambda c: c.num_envs * c.num_steps)
