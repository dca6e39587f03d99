"""What every on-policy algorithm shares (PPO now, FPO next): the environment registry, MLPs, running observation
normalisation, vectorised rollouts, GAE with time limits, the PPO-clip objective, and one iteration of
rollout + epochs x minibatches. An algorithm brings only its policy: how it samples (`Sample`) and its actor loss.

One iteration (PureJaxRL's `_update_step`, inside fluxrl's runner, which scans iterations and maps seeds):
1. `collect` steps `num_envs` environments for `num_steps` in a `lax.scan`; observations are normalised with the
   statistics known before the rollout, and the normalised ones are stored, so the policy's inputs in the epochs are
   exactly those it acted on (the ratio starts at 1);
2. the critic values every observation and every `final_observation` in one batched call; `gae` bootstraps from the
   final observation at a time limit, from nothing at a termination, and never across the automatic reset;
3. `epochs` passes over a fresh permutation of the batch, split into `minibatches`, one Adam step each, advantages
   normalised per minibatch;
4. the observation statistics absorb the rollout's raw observations (used from the next rollout on).

The config of an algorithm using `iterate` has the fields: env, num_envs, num_steps, epochs, minibatches, lr,
anneal_iterations, max_grad_norm, gamma, gae_lambda, reward_scale, value_coef, clip_eps, clip_value_loss,
normalize_observations.

Metrics: `episode_return` / `episode_length` are the mean undiscounted return / length of the episodes that ended
in this iteration's rollout; in an iteration where none ended they repeat the last such value (0 before the first
episode ends), so the runner's NaN guard never fires, and `episodes_ended` (0 there) says which rows are fresh.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from fluxrl.core.config import ConfigError
from fluxrl.envs.control.base import ControlEnv
from fluxrl.envs.control.gridworld import LAYOUTS, GridWorld
from fluxrl.envs.control.gymnax_adapter import GYMNAX_ENVS, GymnaxEnv
from fluxrl.envs.control.playground_adapter import PLAYGROUND_ENVS

# Environments by name; other modules add theirs (tests register a toy one).
ENVS: dict[str, Callable[[], ControlEnv]] = {
    **{f"gridworld-{layout.replace('_', '-')}": (lambda layout=layout: GridWorld(layout)) for layout in LAYOUTS},
    **{name: (lambda env_id=env_id: GymnaxEnv(env_id)) for name, env_id in GYMNAX_ENVS.items()},
    **PLAYGROUND_ENVS}  # made only when asked for; they need the `playground` extra
ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu, "swish": jax.nn.swish}
# Keeps (obs - mean) / sqrt(var + eps) finite for a constant observation component (gym's NormalizeObservation).
NORMALIZE_EPS = 1e-8


def make_env(name: str) -> ControlEnv:
    """The registered environment `name`; ConfigError naming the registered ones otherwise."""
    if name not in ENVS:
        known = ", ".join(sorted(ENVS)) or "(none registered)"
        raise ConfigError(f"env must be one of {known}, got {name!r}.")
    return ENVS[name]()


class MLP(eqx.Module):
    """An MLP on [..., in] inputs with a chosen activation; LeCun-uniform weights and zero biases (the FPO
    reference's `networks.mlp_init`), the last layer's weights scaled by `output_scale`."""

    layers: tuple[tuple[jax.Array, jax.Array], ...]
    activation: str = eqx.field(static=True)

    def __init__(self, sizes: tuple[int, ...], activation: str, key: jax.Array, output_scale: float = 1.0):
        keys = jax.random.split(key, len(sizes) - 1)
        init = jax.nn.initializers.lecun_uniform()
        layers = [(init(k, (n_in, n_out)), jnp.zeros(n_out)) for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:])]
        layers[-1] = (layers[-1][0] * output_scale, layers[-1][1])
        self.layers, self.activation = tuple(layers), activation

    def __call__(self, x: jax.Array) -> jax.Array:
        """The output for inputs [..., in]."""
        for weight, bias in self.layers[:-1]:
            x = ACTIVATIONS[self.activation](x @ weight + bias)
        weight, bias = self.layers[-1]
        return x @ weight + bias


def state_value(critic: MLP, observation: jax.Array) -> jax.Array:
    """V(observation) [...] of a critic with one output, for inputs [..., observation_size]."""
    return critic(observation)[..., 0]


class RunningStats(NamedTuple):
    """Count, mean and summed squared deviations of every observation seen (Chan et al.'s parallel form)."""

    count: jax.Array  # float32 scalar
    mean: jax.Array  # [observation_size]
    sum_squares: jax.Array  # [observation_size], sum of (x - mean)^2


def init_stats(size: int) -> RunningStats:
    """Statistics of no observations (normalisation is then the identity)."""
    return RunningStats(jnp.float32(0.0), jnp.zeros(size), jnp.zeros(size))


def update_stats(stats: RunningStats, batch: jax.Array) -> RunningStats:
    """The statistics of everything in `stats` and the rows of `batch` [n, size] (Chan, Golub, LeVeque 1979)."""
    n = jnp.float32(batch.shape[0])
    batch_mean = jnp.mean(batch, axis=0)
    total = stats.count + n
    delta = batch_mean - stats.mean
    mean = stats.mean + delta * n / total
    sum_squares = (stats.sum_squares + jnp.sum((batch - batch_mean) ** 2, axis=0)
                   + delta ** 2 * stats.count * n / total)
    return RunningStats(total, mean, sum_squares)


def variance(stats: RunningStats) -> jax.Array:
    """The population variance of the observations seen (1 before any)."""
    return jnp.where(stats.count > 0, stats.sum_squares / jnp.maximum(stats.count, 1.0), 1.0)


def normalize(stats: RunningStats | None, observation: jax.Array) -> jax.Array:
    """(observation - mean) / sqrt(var + 1e-8); unchanged when `stats` is None (normalisation off)."""
    if stats is None:
        return observation
    return (observation - stats.mean) / jnp.sqrt(variance(stats) + NORMALIZE_EPS)


class EnvCarry(NamedTuple):
    """The environments between rollouts: their states, raw observations and running episode sums."""

    state: Any
    observation: jax.Array  # [num_envs, observation_size], raw
    episode_return: jax.Array  # [num_envs], undiscounted, unscaled
    episode_length: jax.Array  # [num_envs] int32
    last_return: jax.Array  # mean return of the episodes that ended in the latest rollout that ended any
    last_length: jax.Array


def reset_envs(env: ControlEnv, env_params: Any, key: jax.Array, num_envs: int) -> EnvCarry:
    """`num_envs` fresh episodes."""
    observation, state = jax.vmap(env.reset, (0, None))(jax.random.split(key, num_envs), env_params)
    zeros = jnp.zeros(num_envs)
    return EnvCarry(state, observation, zeros, zeros.astype(jnp.int32), jnp.float32(0.0), jnp.float32(0.0))


class Transition(NamedTuple):
    """One step of every environment (leaves [num_steps, num_envs, ...] from `collect`)."""

    observation: jax.Array  # normalised with the statistics the policy acted on
    action: jax.Array  # what the policy stores (a tanh policy: the pre-squash action)
    extras: Any  # the policy's own, e.g. the log-probability at sampling time
    reward: jax.Array  # raw (unscaled)
    terminated: jax.Array  # bool: no value after it
    truncated: jax.Array  # bool: time limit, bootstrap from next_value
    value: jax.Array  # V(observation)
    next_value: jax.Array  # V(final_observation): the next state's value, before any automatic reset


# (normalised observations [n, observation_size], key) -> (env actions [n, A], stored actions, extras)
Sample = Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array, Any]]


def collect(env: ControlEnv, env_params: Any, carry: EnvCarry, stats: RunningStats | None, sample: Sample,
            value: Callable[[jax.Array], jax.Array], key: jax.Array, num_steps: int):
    """`num_steps` steps of every environment: (carry, Transition [T, N], raw observations [T, N, O], episode
    metrics of the episodes that ended)."""
    num_envs = carry.observation.shape[0]

    def step(inner, step_key):
        carry, ended_return, ended_length, ended = inner
        act_key, env_key = jax.random.split(step_key)
        observation = normalize(stats, carry.observation)
        env_action, action, extras = sample(observation, act_key)
        out = jax.vmap(env.step, (0, 0, 0, None))(jax.random.split(env_key, num_envs), carry.state, env_action,
                                                 env_params)
        done = out.terminated | out.truncated
        episode_return = carry.episode_return + out.reward
        episode_length = carry.episode_length + 1
        inner = (carry._replace(state=out.state, observation=out.observation,
                                episode_return=jnp.where(done, 0.0, episode_return),
                                episode_length=jnp.where(done, 0, episode_length)),
                 ended_return + jnp.sum(jnp.where(done, episode_return, 0.0)),
                 ended_length + jnp.sum(jnp.where(done, episode_length, 0)), ended + jnp.sum(done))
        record = (observation, action, extras, out.reward, out.terminated, out.truncated,
                  normalize(stats, out.final_observation), carry.observation)
        return inner, record

    zero = jnp.float32(0.0)
    (carry, ended_return, ended_length, ended), record = jax.lax.scan(
        step, (carry, zero, jnp.int32(0), jnp.int32(0)), jax.random.split(key, num_steps))
    observation, action, extras, reward, terminated, truncated, final_observation, raw_observation = record
    # The critic is fixed during the rollout, so it values every state at once after it.
    transition = Transition(observation, action, extras, reward, terminated, truncated, value(observation),
                            value(final_observation))
    count = jnp.maximum(ended, 1).astype(jnp.float32)
    carry = carry._replace(last_return=jnp.where(ended > 0, ended_return / count, carry.last_return),
                           last_length=jnp.where(ended > 0, ended_length / count, carry.last_length))
    metrics = {"episode_return": carry.last_return, "episode_length": carry.last_length, "episodes_ended": ended}
    return carry, transition, raw_observation, metrics


def gae(reward, value, next_value, terminated, truncated, gamma: float, gae_lambda: float):
    """Generalised advantage estimates and value targets over a time axis [T, ...] (Schulman et al. 2016, eq. 16):
    delta_t = r_t + gamma (1 - terminated_t) V(s'_t) - V(s_t), with s'_t the step's final observation, and
    A_t = delta_t + gamma lambda (1 - terminated_t)(1 - truncated_t) A_{t+1}, A_T = 0; targets A_t + V(s_t)."""
    alive = 1.0 - terminated.astype(value.dtype)
    delta = reward + gamma * alive * next_value - value
    carry_on = gamma * gae_lambda * alive * (1.0 - truncated.astype(value.dtype))

    def back(advantage, step):
        delta_t, carry_on_t = step
        advantage = delta_t + carry_on_t * advantage
        return advantage, advantage

    _, advantage = jax.lax.scan(back, jnp.zeros_like(value[0]), (delta, carry_on), reverse=True)
    return advantage, advantage + value


def clipped_surrogate(log_ratio, advantage, clip_eps: float):
    """PPO-clip loss -mean(min(r A, clip(r, 1 - eps, 1 + eps) A)), r = exp(log_ratio) (Schulman et al. 2017,
    eq. 7); metrics: the fraction of clipped ratios and the k3 estimate mean(r - 1 - log r) of KL(old || new)."""
    ratio = jnp.exp(log_ratio)
    loss = -jnp.mean(jnp.minimum(ratio * advantage, jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantage))
    metrics = {"clip_fraction": jnp.mean(jnp.abs(ratio - 1.0) > clip_eps),
               "approx_kl": jnp.mean(ratio - 1.0 - log_ratio)}
    return loss, metrics


def value_loss(prediction, old_value, target, clip_eps: float, clip: bool):
    """0.5 mean (V - target)^2; with `clip`, PPO2's pessimistic max over V and old V + clip(V - old V, +-eps)."""
    error = (prediction - target) ** 2
    if clip:
        clipped = old_value + jnp.clip(prediction - old_value, -clip_eps, clip_eps)
        error = jnp.maximum(error, (clipped - target) ** 2)
    return 0.5 * jnp.mean(error)


def make_optimizer(config) -> optax.GradientTransformation:
    """Global-norm clipping then Adam (eps 1e-5 as PureJaxRL), the rate annealed linearly to 0 over
    `anneal_iterations` iterations when that is > 0 (the schedule counts minibatch steps)."""
    lr = config.lr
    if config.anneal_iterations > 0:
        lr = optax.linear_schedule(config.lr, 0.0, config.anneal_iterations * config.epochs * config.minibatches)
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(lr, eps=1e-5))


class OnPolicyState(NamedTuple):
    """Everything one seed's run holds: networks, Adam state, observation statistics, environments, key."""

    actor: Any
    critic: MLP
    opt_state: optax.OptState
    obs_stats: RunningStats
    env: EnvCarry
    key: jax.Array
    iteration: jax.Array  # int32; env_steps = iteration * num_envs * num_steps (int32: exact below 2^31)


def init_state(config, env_params: Any, actor: Any, critic: MLP, key: jax.Array) -> OnPolicyState:
    """A state with fresh environments and no observation statistics."""
    env = make_env(config.env)
    env_key, key = jax.random.split(key)
    return OnPolicyState(actor, critic, make_optimizer(config).init((actor, critic)), init_stats(env.observation_size),
                         reset_envs(env, env_params, env_key, config.num_envs), key, jnp.int32(0))


class Batch(NamedTuple):
    """What the epochs read: the transitions with their advantages and value targets, flattened [T * N, ...]."""

    transition: Transition
    advantage: jax.Array
    target: jax.Array


def iterate(config, env_params: Any, state: OnPolicyState, sample: Callable[[Any], Sample],
            actor_loss: Callable) -> tuple[OnPolicyState, dict]:
    """One iteration (module docstring). `sample(actor)` is the rollout policy; `actor_loss(actor, batch, key)` ->
    (loss, metrics) sees `batch.advantage` normalised per minibatch."""
    env = make_env(config.env)
    rollout_key, epoch_key, key = jax.random.split(state.key, 3)
    stats = state.obs_stats if config.normalize_observations else None
    value = lambda observation: state_value(state.critic, observation)
    carry, transition, raw_observation, metrics = collect(env, env_params, state.env, stats, sample(state.actor),
                                                          value, rollout_key, config.num_steps)
    advantage, target = gae(transition.reward * config.reward_scale, transition.value, transition.next_value,
                            transition.terminated, transition.truncated, config.gamma, config.gae_lambda)
    size = config.num_steps * config.num_envs
    batch = jax.tree.map(lambda x: x.reshape(size, *x.shape[2:]), Batch(transition, advantage, target))
    optimizer = make_optimizer(config)

    def loss(networks, minibatch: Batch, loss_key):
        actor, critic = networks
        # 1e-8 as PureJaxRL: a minibatch of equal advantages gets zero advantages, not NaN.
        normalized = (minibatch.advantage - minibatch.advantage.mean()) / (minibatch.advantage.std() + 1e-8)
        policy_loss, policy_metrics = actor_loss(actor, minibatch._replace(advantage=normalized), loss_key)
        critic_loss = value_loss(state_value(critic, minibatch.transition.observation), minibatch.transition.value,
                                 minibatch.target, config.clip_eps, config.clip_value_loss)
        total = policy_loss + config.value_coef * critic_loss
        return total, {"actor_loss": policy_loss, "value_loss": critic_loss, **policy_metrics}

    def minibatch_step(train, inputs):
        networks, opt_state = train
        minibatch, loss_key = inputs
        (_, step_metrics), grads = jax.value_and_grad(loss, has_aux=True)(networks, minibatch, loss_key)
        updates, opt_state = optimizer.update(grads, opt_state, networks)
        return (optax.apply_updates(networks, updates), opt_state), step_metrics

    def epoch(train, keys):
        permutation_key, loss_key = keys
        # One permutation shared by every leaf: drawn per leaf, XLA does not merge the copies of its sorts.
        order = jax.random.permutation(permutation_key, size)
        shuffled = jax.tree.map(lambda x: x[order].reshape(config.minibatches, size // config.minibatches,
                                                           *x.shape[1:]), batch)
        return jax.lax.scan(minibatch_step, train, (shuffled, jax.random.split(loss_key, config.minibatches)))

    epoch_keys = jax.random.split(epoch_key, (config.epochs, 2))
    (networks, opt_state), epoch_metrics = jax.lax.scan(epoch, ((state.actor, state.critic), state.opt_state),
                                                        epoch_keys)
    obs_stats = state.obs_stats
    if config.normalize_observations:
        obs_stats = update_stats(obs_stats, raw_observation.reshape(size, -1))
    iteration = state.iteration + 1
    new_state = OnPolicyState(*networks, opt_state, obs_stats, carry, key, iteration)
    metrics.update(jax.tree.map(jnp.mean, epoch_metrics))
    metrics["env_steps"] = iteration * size
    return new_state, metrics
