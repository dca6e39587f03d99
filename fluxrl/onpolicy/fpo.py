"""FPO, flow matching policy gradients (McAllister et al. 2025, arXiv 2507.21053): PPO's clipped objective with the
likelihood ratio replaced by a ratio of conditional flow-matching (CFM) losses, so an expressive flow policy trains
without computing its likelihood.

Time convention (one throughout fluxrl, the paper's): tau = 0 is noise, tau = 1 is the action. A point on the path
from noise eps ~ N(0, I) to an action a is x_tau = tau a + (1 - tau) eps, whose velocity is a - eps; the sampler
integrates dx/dtau = v(obs, x, tau) from x ~ N(0, I) at tau = 0 to tau = 1 in `flow_steps` Euler steps. The official
JAX code (akanazawa/fpo, `playground/src/flow_policy/fpo.py`) runs time the other way, t = 1 - tau (noise at t = 1,
velocity eps - a); a field v'(x, t) = -v(x, 1 - t) there gives the same losses and ratios as v here (a test checks).

Per-sample CFM loss of a pair (tau, eps), averaged over action dimensions as the official `_compute_cfm_loss`:
- `output_mode="u"`: mean_d (v - (a - eps))^2, the plain velocity loss;
- `output_mode="eps"` (default): the velocity read as a noise prediction eps_hat = x_tau - tau v, loss
  mean_d (eps - eps_hat)^2 = tau^2 mean_d (v - (a - eps))^2: the official "u_but_supervise_as_eps", whose
  (1 - t)^2 weighting is tau^2 in this convention (759 vs 665 average return over 10 DM Control tasks).

The ratio of an action (`ratio="cfm"`): its `n_mc` pairs (tau_i, eps_i) and old losses l_old_i are drawn once at
rollout time, stored with the transition and reused in every epoch (common random numbers), and
r = exp(mean_i l_old_i - mean_i l_i) (`pair_average="losses"`, the official Playground default); `per-pair`: one
ratio per pair, r_i = exp(clip(l_old_i - l_i, -3, 3)), each clipped in the surrogate (official fpo.py, the `else`
branch of `average_losses_before_exp`); `clamped`: r = exp(clip(mean_i clip(l_old_i - l_i, -3, 3), -3, 3)) (the
official grid world, gridworld/models/fpo.py:212-216). `ratio="denoising-mdp"` is the
paper's DPPO-style baseline: every Euler step is a Gaussian transition x_{k+1} ~ N(x_k + v / K, sde_sigma^2 I), and
each step's likelihood ratio enters the clipped surrogate as one sample.

Actions: the environment gets tanh(x_1) and the pre-squash x_1 is stored (official `rollouts.py`, line 225), as for
the Gaussian baseline; with `squash="none"` it gets x_1 itself and clips it (the official grid world). The velocity
network is an MLP on [obs, x_tau, Fourier(tau)], Fourier(tau) = cos, sin of tau 2^k for k < time_embed_dim / 2
(official `embed_timestep`; time_embed_dim 0: the raw scalar tau, as the official grid world), its output multiplied by
`output_scale` on every call (official `policy_mlp_output_scale`). No entropy bonus: exploration comes from the initial noise. The critic, GAE,
observation normalisation and the epochs are `rollout.py`'s, shared with Gaussian PPO.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

import equinox as eqx
import jax
import jax.numpy as jnp

from fluxrl.core.config import ConfigError, check_choice, check_range
from fluxrl.core.nets import MLP
from fluxrl.core.runner import Algorithm
from fluxrl.onpolicy import objectives, rollout
from fluxrl.onpolicy.config import OnPolicyConfig
from fluxrl.onpolicy.rollout import OnPolicyState

# Bound of a per-pair log-ratio in the per-sample variant (official fpo.py, `jnp.clip(..., -3.0, 3.0)`).
PER_SAMPLE_LOG_RATIO_CLIP = 3.0
# Exploration noise of the denoising-MDP baseline when none is given: a policy with sde_sigma = 0 has no density.
DEFAULT_MDP_SIGMA = 0.1
# Options of the CFM ratio only: the denoising-MDP ratio uses no (tau, eps) pairs.
CFM_ONLY = ("n_mc", "t_sampling", "pair_average")


@dataclass(frozen=True)
class FPOConfig(OnPolicyConfig):
    """FPO; the FPO-specific defaults are the official MuJoCo Playground ones, the rest equal PPOConfig's."""

    env: str = "gridworld-two-walls"
    """Environment: a name in `fluxrl.envs.control.registry.ENVS`, a gymnax id, or a factory's import path."""
    clip_eps: float = 0.05
    """Clipping epsilon of the ratio, in (0, 1) (official 0.05; 0.1 and 0.2 were worse in the paper)."""
    actor_hidden: tuple[int, ...] = (32, 32, 32, 32)
    """Hidden layer sizes of the velocity network (official 4 x 32)."""
    flow_steps: int = 10
    """Euler steps of the sampler from noise to action."""
    n_mc: int = 8
    """(tau, eps) pairs per action in the ratio's CFM losses."""
    output_mode: str = "eps"
    """CFM loss: eps (the velocity supervised as a noise prediction, tau^2-weighted) or u (plain velocity)."""
    t_sampling: str = "grid"
    """Where the pairs' tau is drawn: grid (the sampler's step times k / flow_steps, official) or uniform in [0, 1)."""
    pair_average: str = "losses"
    """How the n_mc pairs make a ratio: losses (r = exp(mean old - mean new), Playground's default), per-pair (one
    ratio per pair, each log-ratio clipped to +-3, each clipped in the surrogate) or clamped (each pair's loss
    difference clamped to +-3, averaged, clamped again, then exp: the official grid world)."""
    ratio: str = "cfm"
    """cfm (FPO) or denoising-mdp (the DPPO-style baseline: per-Euler-step Gaussian likelihood ratios)."""
    sde_sigma: Optional[float] = None
    """Noise added at every Euler step (default: 0 for cfm, 0.1 for denoising-mdp, which needs it > 0)."""
    time_embed_dim: int = 8
    """Size of the Fourier embedding of tau (even); 0 feeds the raw scalar tau (the official grid world)."""
    output_scale: float = 0.25
    """The velocity network's output is multiplied by this (official policy_mlp_output_scale)."""

    def __post_init__(self):
        super().__post_init__()
        for name in ("flow_steps", "n_mc"):
            check_range(name, getattr(self, name), 1)
        check_range("time_embed_dim", self.time_embed_dim, 0)
        check_choice("pair_average", self.pair_average, ("losses", "per-pair", "clamped"))
        check_range("output_scale", self.output_scale, 0.0, low_open=True)
        check_choice("output_mode", self.output_mode, ("eps", "u"))
        check_choice("t_sampling", self.t_sampling, ("grid", "uniform"))
        check_choice("ratio", self.ratio, ("cfm", "denoising-mdp"))
        if self.time_embed_dim % 2:
            raise ConfigError(f"time_embed_dim must be even (cos and sin pairs), got {self.time_embed_dim}.")
        if self.ratio == "denoising-mdp":
            for name in CFM_ONLY:
                default = getattr(type(self), name)
                if getattr(self, name) != default:
                    raise ConfigError(f"{name} applies to ratio=cfm only (the CFM losses of the ratio); under "
                                      f"ratio=denoising-mdp leave it at its default {default!r}.")
        if self.sde_sigma is not None:
            check_range("sde_sigma", self.sde_sigma, 0.0)
            if self.ratio == "denoising-mdp" and self.sde_sigma == 0:
                raise ConfigError("ratio denoising-mdp needs sde_sigma > 0 (a deterministic Euler step has no "
                                  "density), e.g. --sde-sigma 0.1.")

    @property
    def sigma(self) -> float:
        """The Euler steps' noise level in use."""
        if self.sde_sigma is not None:
            return self.sde_sigma
        return DEFAULT_MDP_SIGMA if self.ratio == "denoising-mdp" else 0.0


def fourier(tau: jax.Array, size: int) -> jax.Array:
    """[cos(tau 2^k), sin(tau 2^k)] for k < size / 2, for tau [..., 1]: [..., size]; tau itself when size is 0."""
    if size == 0:
        return tau
    scaled = tau * 2.0 ** jnp.arange(size // 2)
    return jnp.concatenate([jnp.cos(scaled), jnp.sin(scaled)], axis=-1)


class FlowActor(eqx.Module):
    """The velocity field v(obs, x, tau) of a flow policy."""

    net: MLP
    output_scale: float = eqx.field(static=True)
    time_embed_dim: int = eqx.field(static=True)

    def velocity(self, observation: jax.Array, x: jax.Array, tau: jax.Array) -> jax.Array:
        """v [..., A] at observations [..., O], points x [..., A] and times tau [..., 1] (broadcast together)."""
        shape = jnp.broadcast_shapes(observation.shape[:-1], x.shape[:-1], tau.shape[:-1])
        features = [jnp.broadcast_to(observation, (*shape, observation.shape[-1])), jnp.broadcast_to(x, (*shape,
                    x.shape[-1])), jnp.broadcast_to(fourier(tau, self.time_embed_dim), (*shape, max(self.time_embed_dim, 1)))]
        return self.net(jnp.concatenate(features, axis=-1)) * self.output_scale


Velocity = Callable[[jax.Array, jax.Array], jax.Array]  # (x [..., A], tau [..., 1]) -> v [..., A]


def euler_path(velocity: Velocity, x0: jax.Array, flow_steps: int, sigma: float = 0.0,
               noise: jax.Array | None = None) -> jax.Array:
    """The points x_0 ... x_K [K + 1, ...] of K = flow_steps Euler steps of dx/dtau = velocity(x, tau) from x0 at
    tau = 0 to tau = 1, each step adding sigma * noise[k] (noise [K, ...])."""
    dt = 1.0 / flow_steps
    if noise is None:
        noise = jnp.zeros((flow_steps, *x0.shape), x0.dtype)

    def step(x, inputs):
        tau, step_noise = inputs
        x = x + dt * velocity(x, jnp.full((*x.shape[:-1], 1), tau, x.dtype)) + sigma * step_noise
        return x, x

    _, points = jax.lax.scan(step, x0, (jnp.arange(flow_steps) * dt, noise))
    return jnp.concatenate([x0[None], points])


def cfm_loss(actor: FlowActor, observation: jax.Array, action: jax.Array, tau: jax.Array, eps: jax.Array,
             output_mode: str) -> jax.Array:
    """Per-pair CFM losses [..., n] of actions [..., A] at observations [..., O] for pairs tau [..., n, 1],
    eps [..., n, A] (module docstring)."""
    target = action[..., None, :]
    x_tau = tau * target + (1.0 - tau) * eps
    velocity = actor.velocity(observation[..., None, :], x_tau, tau)
    if output_mode == "u":
        return jnp.mean((velocity - (target - eps)) ** 2, axis=-1)
    eps_hat = x_tau - tau * velocity
    return jnp.mean((eps - eps_hat) ** 2, axis=-1)


def draw_pairs(key: jax.Array, shape: tuple[int, ...], action_size: int, flow_steps: int, t_sampling: str):
    """n_mc pairs per action: tau [*shape, 1] (grid: k / flow_steps, k uniform below flow_steps; or uniform) and
    eps [*shape, action_size] ~ N(0, I), for `shape` = (..., n_mc)."""
    tau_key, eps_key = jax.random.split(key)
    if t_sampling == "grid":
        tau = jax.random.randint(tau_key, (*shape, 1), 0, flow_steps) / flow_steps
    else:
        tau = jax.random.uniform(tau_key, (*shape, 1))
    return tau.astype(jnp.float32), jax.random.normal(eps_key, (*shape, action_size))


def denoising_log_likelihood(actor: FlowActor, observation: jax.Array, path: jax.Array, sigma: float) -> jax.Array:
    """log N(x_{k+1}; x_k + v(obs, x_k, k/K) / K, sigma^2 I) of every Euler step [..., K] of paths [..., K + 1, A]."""
    flow_steps, action_size = path.shape[-2] - 1, path.shape[-1]
    tau = (jnp.arange(flow_steps, dtype=path.dtype) / flow_steps)[:, None]
    start, end = path[..., :-1, :], path[..., 1:, :]
    mean = start + actor.velocity(observation[..., None, :], start, tau) / flow_steps
    return (-0.5 * jnp.sum(((end - mean) / sigma) ** 2, axis=-1)
            - action_size * (math.log(sigma) + 0.5 * math.log(2.0 * math.pi)))


def _sample_path(config: FPOConfig, actor: FlowActor, observation: jax.Array, key: jax.Array) -> jax.Array:
    start_key, noise_key = jax.random.split(key)
    action_size = actor.net.out_size
    x0 = jax.random.normal(start_key, (observation.shape[0], action_size))
    noise = None
    if config.sigma > 0:
        noise = jax.random.normal(noise_key, (config.flow_steps, *x0.shape))
    return euler_path(lambda x, tau: actor.velocity(observation, x, tau), x0, config.flow_steps, config.sigma, noise)


def sample(config: FPOConfig) -> Callable[[FlowActor], rollout.Sample]:
    """The rollout policy of an actor: tanh(x_1) for the environment, x_1 stored, and what the ratio needs later
    (cfm: the pairs and their old losses; denoising-mdp: the Euler path and its old step log-likelihoods)."""
    def for_actor(actor: FlowActor) -> rollout.Sample:
        def act(observation, key):
            path_key, pair_key = jax.random.split(key)
            path = _sample_path(config, actor, observation, path_key)
            action = path[-1]
            if config.ratio == "cfm":
                tau, eps = draw_pairs(pair_key, (observation.shape[0], config.n_mc), action.shape[-1],
                                      config.flow_steps, config.t_sampling)
                extras = (tau, eps, cfm_loss(actor, observation, action, tau, eps, config.output_mode))
            else:
                path = jnp.moveaxis(path, 0, -2)  # [n, K + 1, A]
                extras = (path, denoising_log_likelihood(actor, observation, path, config.sigma))
            return (jnp.tanh(action) if config.squash == "tanh" else action), action, extras
        return act
    return for_actor


def log_ratio(config: FPOConfig, actor: FlowActor, observation: jax.Array, action: jax.Array, extras: Any):
    """(log-ratios [B] or [B, samples] of the current actor to the rollout's, current CFM losses [B, n_mc] or None)."""
    if config.ratio == "denoising-mdp":
        path, old = extras
        return denoising_log_likelihood(actor, observation, path, config.sigma) - old, None
    tau, eps, old = extras
    new = cfm_loss(actor, observation, action, tau, eps, config.output_mode)
    if config.pair_average == "losses":
        return jnp.mean(old, axis=-1) - jnp.mean(new, axis=-1), new
    clipped = jnp.clip(old - new, -PER_SAMPLE_LOG_RATIO_CLIP, PER_SAMPLE_LOG_RATIO_CLIP)
    if config.pair_average == "per-pair":
        return clipped, new
    return jnp.clip(jnp.mean(clipped, axis=-1), -PER_SAMPLE_LOG_RATIO_CLIP, PER_SAMPLE_LOG_RATIO_CLIP), new


def make_data(config: FPOConfig) -> Any:
    """The environment's parameters, shared read-only by every seed."""
    return rollout.make_env(config.env).default_params()


def init(config: FPOConfig, env_params: Any, key: jax.Array) -> OnPolicyState:
    """Fresh velocity network and critic, Adam, no observation statistics, fresh environments."""
    env = rollout.make_env(config.env)
    actor_key, critic_key, key = jax.random.split(key, 3)
    inputs = env.observation_size + env.action_size + max(config.time_embed_dim, 1)
    net = MLP((inputs, *config.actor_hidden, env.action_size), actor_key, config.activation, config.network_init)
    critic = MLP((env.observation_size, *config.critic_hidden, 1), critic_key, config.activation, config.network_init)
    actor = FlowActor(net, config.output_scale, config.time_embed_dim)
    return rollout.init_state(config, env_params, actor, critic, key)


def update(config: FPOConfig, env_params: Any, state: OnPolicyState) -> tuple[OnPolicyState, dict]:
    """One rollout and its epochs of clipped CFM-ratio updates."""
    def actor_loss(actor, batch: rollout.Batch, key):
        del key  # the ratio's randomness was drawn at rollout time
        transition = batch.transition
        ratio, losses = log_ratio(config, actor, transition.observation, transition.action, transition.extras)
        advantage = jnp.broadcast_to(batch.advantage.reshape(-1, *(1,) * (ratio.ndim - 1)), ratio.shape)
        loss, metrics = objectives.clipped_surrogate(ratio, advantage, config.clip_eps)
        if losses is not None:
            metrics["cfm_loss"] = jnp.mean(losses)
        return loss, metrics

    return rollout.iterate(config, env_params, state, sample(config), actor_loss)


ALGORITHM = Algorithm(name="fpo", config_type=FPOConfig, init=init, update=update, make_data=make_data,
                      progress_metrics=("episode_return",), counters=("env_steps",), throughput_unit="env_steps",
                      work_per_iteration=lambda c: c.num_envs * c.num_steps)
