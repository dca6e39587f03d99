"""What every on-policy algorithm shares (PPO and FPO): vectorised rollouts and one iteration of rollout + epochs x
minibatches. The objectives, GAE and the optimiser are in `objectives.py`, the running observation statistics in
`normalization.py`, the environments in `fluxrl.envs.control`, the networks are `fluxrl.core.nets.MLP`. An algorithm
brings only its policy: how it samples (`Sample`) and its actor loss.

One iteration (PureJaxRL's `_update_step`, inside fluxrl's runner, which scans iterations and maps seeds):
1. `collect` steps `num_envs` environments for `num_steps` in a `lax.scan`; observations are normalised with the
   statistics known before the rollout, and the normalised ones are stored, so the policy's inputs in the epochs are
   exactly those it acted on (the ratio starts at 1);
2. the critic values every observation and every `final_observation` in one batched call; `gae` bootstraps from the
   final observation at a time limit (or not, `time_limit`), from nothing at a termination, and never across the
   automatic reset;
3. `epochs` passes over a fresh permutation of the batch, split into `minibatches`, one Adam step each, advantages
   standardised per minibatch (or once per batch); with `gae_chunk` the minibatches are whole chunks of consecutive
   steps and their advantages are recomputed with the current critic (the official Playground code); with
   `target_kl` the epochs stop early once the KL estimate passes it;
4. the observation statistics absorb the rollout's raw observations (used from the next rollout on).

The config of an algorithm using `iterate` is an `OnPolicyConfig` (fluxrl/onpolicy/config.py).

Metrics: `episode_return` / `episode_length` are the mean undiscounted return / length of the episodes that ended
in this iteration's rollout; in an iteration where none ended they repeat the last such value (0 before the first
episode ends), so the runner's NaN guard never fires, and `episodes_ended` (0 there) says which rows are fresh.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from fluxrl.core.nets import MLP
from fluxrl.envs.control.base import ControlEnv
from fluxrl.envs.control.registry import make_env
from fluxrl.onpolicy import objectives
from fluxrl.onpolicy.normalization import RunningStats, init_stats, normalize, update_stats

TIME_LIMITS = ("bootstrap", "terminate", "zero")


def state_value(critic: MLP, observation: jax.Array) -> jax.Array:
    """V(observation) [...] of a critic with one output, for inputs [..., observation_size]."""
    return critic(observation)[..., 0]


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
    final_observation: jax.Array  # normalised like `observation`; revalued when advantages are recomputed


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
                            value(final_observation), final_observation)
    count = jnp.maximum(ended, 1).astype(jnp.float32)
    carry = carry._replace(last_return=jnp.where(ended > 0, ended_return / count, carry.last_return),
                           last_length=jnp.where(ended > 0, ended_length / count, carry.last_length))
    metrics = {"episode_return": carry.last_return, "episode_length": carry.last_length, "episodes_ended": ended}
    return carry, transition, raw_observation, metrics


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
    opt_state = objectives.make_optimizer(config).init((actor, critic))
    return OnPolicyState(actor, critic, opt_state, init_stats(env.observation_size),
                         reset_envs(env, env_params, env_key, config.num_envs), key, jnp.int32(0))


class Batch(NamedTuple):
    """What the epochs read: the transitions with their advantages, value targets and value-loss weights."""

    transition: Transition
    advantage: jax.Array
    target: jax.Array
    mask: jax.Array


def advantages(config, critic, transition: Transition) -> Batch:
    """GAE over the time axis of transitions [T, ...], with the values stored at rollout time (critic None) or
    recomputed by `critic` (not differentiated)."""
    if critic is not None:
        revalue = lambda observation: jax.lax.stop_gradient(state_value(critic, observation))
        transition = transition._replace(value=revalue(transition.observation),
                                         next_value=revalue(transition.final_observation))
    advantage, target = objectives.gae(transition.reward * config.reward_scale, transition.value,
                                       transition.next_value, transition.terminated, transition.truncated,
                                       config.gamma, config.gae_lambda, config.time_limit)
    return Batch(transition, advantage, target, objectives.value_mask(transition.truncated, config.time_limit))


def _chunks(config, transition: Transition) -> Transition:
    """Transitions [T, N, ...] as chunks [L, C, ...] of L = gae_chunk consecutive steps of one environment."""
    chunk = config.gae_chunk
    return jax.tree.map(lambda x: jnp.moveaxis(x.reshape(x.shape[0] // chunk, chunk, *x.shape[1:]), 1, 0)
                        .reshape(chunk, -1, *x.shape[2:]), transition)


def iterate(config, env_params: Any, state: OnPolicyState, sample: Callable[[Any], Sample],
            actor_loss: Callable) -> tuple[OnPolicyState, dict]:
    """One iteration (module docstring). `sample(actor)` is the rollout policy; `actor_loss(actor, batch, key)` ->
    (loss, metrics) sees `batch.advantage` standardised (per minibatch or once per batch)."""
    env = make_env(config.env)
    rollout_key, epoch_key, key = jax.random.split(state.key, 3)
    stats = state.obs_stats if config.normalize_observations else None
    value = lambda observation: state_value(state.critic, observation)
    carry, transition, raw_observation, metrics = collect(env, env_params, state.env, stats, sample(state.actor),
                                                          value, rollout_key, config.num_steps)
    size = config.num_steps * config.num_envs
    if config.gae_chunk:
        # Minibatches of whole chunks [L, C / M]: advantages are recomputed inside the loss with the current critic.
        data = _chunks(config, transition)
        units, unit_axis = data.reward.shape[1], 1
    else:
        batch = advantages(config, None, transition)
        if config.advantage_normalization == "batch":
            batch = batch._replace(advantage=objectives.standardize(batch.advantage))
        data = jax.tree.map(lambda x: x.reshape(size, *x.shape[2:]), batch)
        units, unit_axis = size, 0
    optimizer = objectives.make_optimizer(config)

    def loss(networks, minibatch, loss_key):
        actor, critic = networks
        if config.gae_chunk:
            minibatch = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), advantages(config, critic, minibatch))
        if config.advantage_normalization == "minibatch":
            minibatch = minibatch._replace(advantage=objectives.standardize(minibatch.advantage))
        policy_loss, policy_metrics = actor_loss(actor, minibatch, loss_key)
        critic_loss = objectives.value_loss(state_value(critic, minibatch.transition.observation),
                                            minibatch.transition.value, minibatch.target, config.clip_eps,
                                            config.clip_value_loss, minibatch.mask)
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
        order = jax.random.permutation(permutation_key, units)

        def split(x):
            x = jnp.moveaxis(jnp.take(x, order, axis=unit_axis), unit_axis, 0)
            x = x.reshape(config.minibatches, units // config.minibatches, *x.shape[1:])
            return jnp.moveaxis(x, 1, 1 + unit_axis)

        return jax.lax.scan(minibatch_step, train, (jax.tree.map(split, data),
                                                     jax.random.split(loss_key, config.minibatches)))

    def guarded_epoch(carry, keys):
        # PPO's early stop: once an epoch's last minibatch estimates KL above target_kl, the rest are skipped.
        train, running = carry
        skipped = jax.tree.map(lambda m: jnp.zeros(m.shape, m.dtype), jax.eval_shape(epoch, train, keys)[1])
        train, epoch_metrics = jax.lax.cond(running, epoch, lambda t, k: (t, skipped), train, keys)
        running = running & (epoch_metrics["approx_kl"][-1] <= config.target_kl)
        return (train, running), (epoch_metrics, carry[1])

    epoch_keys = jax.random.split(epoch_key, (config.epochs, 2))
    start = ((state.actor, state.critic), state.opt_state)
    if config.target_kl is None:
        (networks, opt_state), epoch_metrics = jax.lax.scan(epoch, start, epoch_keys)
        metrics.update(jax.tree.map(jnp.mean, epoch_metrics))
    else:
        ((networks, opt_state), _), (epoch_metrics, ran) = jax.lax.scan(guarded_epoch, (start, jnp.bool_(True)),
                                                                        epoch_keys)
        weight = ran.astype(jnp.float32)
        metrics.update(jax.tree.map(lambda m: jnp.sum(jnp.mean(m, axis=1) * weight) / jnp.sum(weight), epoch_metrics))
        metrics["epochs_run"] = jnp.sum(weight)
    obs_stats = state.obs_stats
    if config.normalize_observations:
        obs_stats = update_stats(obs_stats, raw_observation.reshape(size, -1))
    iteration = state.iteration + 1
    new_state = OnPolicyState(*networks, opt_state, obs_stats, carry, key, iteration)
    metrics["env_steps"] = iteration * size
    return new_state, metrics
