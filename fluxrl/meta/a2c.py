"""A2C on vectorised Jumanji Snake, its discount, lambda and loss weights read from meta-parameter logits.

The network (`network.py`), optimiser and settings are those of the multi-step meta-gradient group's public code
as the reference records them (Bonnet et al. 2021, arXiv 2111.00206): Conv(32, 2x2, stride 2) -> Conv(32, 2x2)
-> a policy MLP [64, 64] and a value MLP [128, 128], illegal moves masked out of the logits; 512 environments
x 5 steps per update, RMSProp 5e-4, gamma 0.8, lambda 0.95, loss weights l_pg 1, l_td 0.5, l_en 0.01. The inner
loss (Xu et al. 2018):

    L_in(theta; tau, h) = l_pg * -mean log pi(a|s) A  +  l_td * mean (G - v(s))^2  -  l_en * mean H[pi(.|s)]

with G the TD(lambda) return under discount gamma and A = G - v(s). The targets G and A hold the network's values
fixed for theta's own (semi-)gradient, but stay functions of theta and h, so a meta-gradient differentiates
through them. The outer loss is the policy-gradient term alone with gamma' = lambda' = 1 (`outer_loss`).

One update, `inner_step`, takes the pending rollout (collected by the current network), applies one RMSProp step
and collects the next rollout with the new network; plain A2C is this step with fixed meta-parameters, and
`metagrad.py` differentiates K of them. Metrics as the on-policy family: `episode_return` / `episode_length` are the
mean undiscounted return / length of the episodes that ended in the iteration's rollouts, repeating the last such
value when none ended (0 before the first), `episodes_ended` counts them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from fluxrl.core.config import check_range
from fluxrl.core.runner import Algorithm
from fluxrl.envs.jumanji import snake
from fluxrl.meta.network import SnakeNet, masked_log_policy

# Meta-parameters in their fixed order; a logit each. gamma and lambda are sigmoid(logit); a loss weight is
# 2 x its initial value x sigmoid(logit), so it starts at its initial value (logit 0) and stays in (0, 2 x initial).
META_PARAMS = ("gamma", "lambda", "policy", "value", "entropy")
# Each meta-parameter's metric name (docs/metrics.md).
METRIC_NAMES = {"gamma": "gamma", "lambda": "lambda", "policy": "policy_coef", "value": "value_coef",
                "entropy": "entropy_coef"}


@dataclass(frozen=True)
class A2CConfig:
    """A2C on Snake; defaults are the meta-gradient group's public settings (module docstring)."""

    env: str = "snake-6x6"
    """Board: snake-6x6 (time limit 500) or snake-12x12 (Jumanji's Snake-v1, time limit 4000)."""
    num_envs: int = 512
    """Environments stepped in parallel."""
    num_steps: int = 5
    """Steps of every environment per update (the rollout length)."""
    updates_per_iteration: int = 1
    """A2C updates (rollouts) per runner iteration; a meta-gradient run needs a multiple of its inner steps."""
    lr: float = 5e-4
    """RMSProp learning rate (> 0)."""
    rmsprop_decay: float = 0.99
    """RMSProp's decay of the squared-gradient average, in (0, 1)."""
    rmsprop_eps: float = 1e-5
    """RMSProp's epsilon inside the square root (> 0); it also bounds the meta-gradient through 1/sqrt."""
    gamma: float = 0.8
    """Discount (the start of a meta-learned one), in (0, 1)."""
    gae_lambda: float = 0.95
    """TD(lambda)'s lambda (the start of a meta-learned one), in (0, 1)."""
    policy_coef: float = 1.0
    """Weight l_pg of the policy-gradient loss (> 0)."""
    value_coef: float = 0.5
    """Weight l_td of the squared TD(lambda) error (> 0)."""
    entropy_coef: float = 0.01
    """Weight l_en of the entropy bonus (> 0)."""
    channels: int = 32
    """Channels of both convolutions."""
    policy_hidden: tuple[int, ...] = (64, 64)
    """Hidden sizes of the policy head."""
    value_hidden: tuple[int, ...] = (128, 128)
    """Hidden sizes of the value head."""

    def __post_init__(self):
        snake.check_name(self.env)
        for name in ("num_envs", "num_steps", "updates_per_iteration", "channels"):
            check_range(name, getattr(self, name), 1)
        for name in ("lr", "rmsprop_eps", "policy_coef", "value_coef", "entropy_coef"):
            check_range(name, getattr(self, name), 0.0, low_open=True)
        for name in ("rmsprop_decay", "gamma", "gae_lambda"):
            check_range(name, getattr(self, name), 0.0, 1.0, low_open=True, high_open=True)
        for name in ("policy_hidden", "value_hidden"):
            for size in getattr(self, name):
                check_range(name, size, 1)


def initial_logits(config: A2CConfig) -> jax.Array:
    """The meta-parameter logits [5] that give the config's gamma, lambda and loss weights."""
    logit = lambda p: math.log(p / (1.0 - p))  # noqa: E731
    return jnp.array([logit(config.gamma), logit(config.gae_lambda), 0.0, 0.0, 0.0], jnp.float32)


def hyperparameters(config: A2CConfig, logits: jax.Array) -> dict[str, jax.Array]:
    """The meta-parameters' values from their logits (the comment on META_PARAMS), by name."""
    squashed = jax.nn.sigmoid(logits)
    scale = jnp.array([1.0, 1.0, 2 * config.policy_coef, 2 * config.value_coef, 2 * config.entropy_coef])
    return dict(zip(META_PARAMS, squashed * scale))


def make_optimizer(config: A2CConfig) -> optax.GradientTransformation:
    """RMSProp (the inner optimiser, differentiated through by a meta-gradient)."""
    return optax.rmsprop(config.lr, decay=config.rmsprop_decay, eps=config.rmsprop_eps)


def lambda_returns(reward: jax.Array, discount: jax.Array, next_value: jax.Array, lambda_: jax.Array) -> jax.Array:
    """TD(lambda) returns over a time axis [T, ...] (Sutton and Barto 2018, eq. 12.18 in recursive form; rlax's
    `lambda_returns`): G_t = r_t + discount_t ((1 - lambda) v_{t+1} + lambda G_{t+1}), G_T = v_T, with
    next_value[t] = v_{t+1}. Differentiable in every input, gamma and lambda included."""
    def back(following, step):
        r, d, v = step
        g = r + d * ((1.0 - lambda_) * v + lambda_ * following)
        return g, g

    _, returns = jax.lax.scan(back, next_value[-1], (reward, discount, next_value), reverse=True)
    return returns


class Batch(NamedTuple):
    """One rollout (leaves [T, N, ...]) and the observation after it."""

    grid: jax.Array  # [T, N, rows, cols, 5]
    mask: jax.Array  # [T, N, 4]
    action: jax.Array  # [T, N] int32
    reward: jax.Array  # [T, N]
    done: jax.Array  # [T, N] bool: discount 0 after the step
    last_grid: jax.Array  # [N, rows, cols, 5]


class EnvCarry(NamedTuple):
    """The environments between rollouts, with each one's running episode sums."""

    state: Any  # Jumanji's states [N]
    observation: snake.Board  # [N, ...]
    episode_return: jax.Array  # [N]
    episode_length: jax.Array  # [N] int32


class Ended(NamedTuple):
    """Sums over the episodes that ended in some rollouts."""

    total_return: jax.Array
    total_length: jax.Array
    count: jax.Array


def collect(config: A2CConfig, net: SnakeNet, carry: EnvCarry, key: jax.Array) -> tuple[Batch, EnvCarry, Ended]:
    """`num_steps` steps of every environment under the policy of `net` (not differentiated)."""
    net = jax.lax.stop_gradient(net)

    def body(inner, step_key):
        carry, ended = inner
        board = carry.observation
        logits = net.logits(board.grid)
        action = jax.random.categorical(step_key, masked_log_policy(logits, board.action_mask)).astype(jnp.int32)
        out = snake.step_batch(snake.Snake(config.env), step_key, carry.state, action)
        done = out.terminated | out.truncated  # every Snake end has discount 0: it is `terminated`
        episode_return, episode_length = carry.episode_return + out.reward, carry.episode_length + 1
        ended = Ended(ended.total_return + jnp.sum(jnp.where(done, episode_return, 0.0)),
                      ended.total_length + jnp.sum(jnp.where(done, episode_length, 0)), ended.count + done.sum())
        record = (board.grid, board.action_mask, action, out.reward, done)
        carry = EnvCarry(out.state, out.observation, jnp.where(done, 0.0, episode_return),
                         jnp.where(done, 0, episode_length))
        return (carry, ended), record

    zero = Ended(jnp.float32(0.0), jnp.int32(0), jnp.int32(0))
    (carry, ended), (grid, mask, action, reward, done) = jax.lax.scan(body, (carry, zero),
                                                                      jax.random.split(key, config.num_steps))
    return Batch(grid, mask, action, reward, done, carry.observation.grid), carry, ended


def _forward(net: SnakeNet, batch: Batch):
    """(log pi [T, N, 4], values [T, N], next values [T, N]) of a rollout in one network call."""
    grids = jnp.concatenate([batch.grid, batch.last_grid[None]])
    logits, values = net(grids)
    return masked_log_policy(logits[:-1], batch.mask), values[:-1], values[1:]


def _heads_loss(log_policy, values, batch: Batch, returns, advantage, h):
    """The inner loss as a function of the network's outputs, its targets held fixed; (loss, metrics)."""
    taken = jnp.take_along_axis(log_policy, batch.action[..., None], axis=-1)[..., 0]
    policy_loss = -jnp.mean(taken * advantage)
    value_loss = jnp.mean((returns - values) ** 2)
    entropy = -jnp.mean(jnp.sum(jnp.exp(log_policy) * log_policy, axis=-1))
    loss = h["policy"] * policy_loss + h["value"] * value_loss - h["entropy"] * entropy
    return loss, {"value_loss": value_loss, "entropy": entropy}


def outer_loss(net: SnakeNet, batch: Batch) -> jax.Array:
    """The outer loss -mean log pi(a|s) A', A' = G^{1,1} - v(s) held fixed (reference eta': gamma' = lambda' = 1,
    no value or entropy term)."""
    log_policy, values, next_values = _forward(net, batch)
    return _outer(log_policy, values, next_values, batch)


def _outer(log_policy, values, next_values, batch):
    discount = 1.0 - batch.done.astype(jnp.float32)
    advantage = jax.lax.stop_gradient(lambda_returns(batch.reward, discount, next_values, 1.0) - values)
    taken = jnp.take_along_axis(log_policy, batch.action[..., None], axis=-1)[..., 0]
    return -jnp.mean(taken * advantage)


class StepCarry(NamedTuple):
    """What one update changes: network, RMSProp state, the pending rollout, environments, ended episodes."""

    net: SnakeNet
    opt_state: optax.OptState
    batch: Batch
    env: EnvCarry
    ended: Ended


def update_network(config: A2CConfig, logits: jax.Array, net: SnakeNet, opt_state: optax.OptState, batch: Batch):
    """One RMSProp step of the inner loss on a rollout: (network, RMSProp state, outer loss of the network before
    the step on that rollout, metrics); differentiable in the logits, the targets' path included."""
    h = hyperparameters(config, logits)
    (log_policy, values, next_values), pullback = jax.vjp(lambda net: _forward(net, batch), net)
    discount = h["gamma"] * (1.0 - batch.done.astype(log_policy.dtype))
    returns = lambda_returns(batch.reward, discount, next_values, h["lambda"])
    advantage = returns - values
    # The loss's gradient with respect to the network's outputs, pulled back through the network: theta's
    # semi-gradient, in which the targets are constants though they remain functions of theta and h.
    (_, metrics), (d_log_policy, d_values) = jax.value_and_grad(_heads_loss, argnums=(0, 1), has_aux=True)(
        log_policy, values, batch, returns, advantage, h)
    grads, = pullback((d_log_policy, d_values, jnp.zeros_like(next_values)))
    updates, opt_state = make_optimizer(config).update(grads, opt_state, net)
    return optax.apply_updates(net, updates), opt_state, _outer(log_policy, values, next_values, batch), metrics


def inner_step(config: A2CConfig, logits: jax.Array, carry: StepCarry, key: jax.Array):
    """One A2C update on the pending rollout, then a fresh rollout with the new network: (carry, (outer loss of
    the network before the update on the pending rollout, metrics))."""
    net, opt_state, loss_before, metrics = update_network(config, logits, carry.net, carry.opt_state, carry.batch)
    new_batch, env, ended = collect(config, net, carry.env, key)
    ended = Ended(*(a + b for a, b in zip(carry.ended, ended)))
    return StepCarry(net, opt_state, new_batch, env, ended), (loss_before, metrics)


class A2CState(NamedTuple):
    """One seed's run: the step carry, the meta-parameter logits, their Adam state, last episode means, key."""

    step: StepCarry
    logits: jax.Array  # [5], META_PARAMS order
    meta_opt_state: Any  # empty for plain A2C
    last_return: jax.Array
    last_length: jax.Array
    key: jax.Array
    iteration: jax.Array


def init_state(config: A2CConfig, key: jax.Array, meta_opt_state: Any = ()) -> A2CState:
    """A fresh network and environments, and the first rollout collected."""
    net_key, env_key, rollout_key, key = jax.random.split(key, 4)
    net = SnakeNet(config, net_key)
    observation, env_state = snake.reset_batch(snake.Snake(config.env), env_key, config.num_envs)
    env = EnvCarry(env_state, observation, jnp.zeros(config.num_envs), jnp.zeros(config.num_envs, jnp.int32))
    batch, env, _ = collect(config, net, env, rollout_key)
    zero = Ended(jnp.float32(0.0), jnp.int32(0), jnp.int32(0))
    step = StepCarry(net, make_optimizer(config).init(net), batch, env, zero)
    return A2CState(step, initial_logits(config), meta_opt_state, jnp.float32(0.0), jnp.float32(0.0), key,
                    jnp.int32(0))


def finish_iteration(config: A2CConfig, state: A2CState, step: StepCarry, step_metrics: dict, key, logits,
                     meta_opt_state) -> tuple[A2CState, dict]:
    """The new state and the iteration's metrics (episode means, env steps, meta-parameter values, losses)."""
    ended = step.ended
    count = jnp.maximum(ended.count, 1).astype(jnp.float32)
    last_return = jnp.where(ended.count > 0, ended.total_return / count, state.last_return)
    last_length = jnp.where(ended.count > 0, ended.total_length / count, state.last_length)
    iteration = state.iteration + 1
    zero = Ended(jnp.float32(0.0), jnp.int32(0), jnp.int32(0))
    new_state = A2CState(step._replace(ended=zero), logits, meta_opt_state, last_return, last_length, key,
                         iteration)
    h = hyperparameters(config, logits)
    metrics = {"episode_return": last_return, "episode_length": last_length, "episodes_ended": ended.count,
               "env_steps": iteration * config.updates_per_iteration * config.num_envs * config.num_steps,
               **{METRIC_NAMES[name]: value for name, value in h.items()},
               **jax.tree.map(jnp.mean, step_metrics)}
    return new_state, metrics


def init(config: A2CConfig, data: Any, key: jax.Array) -> A2CState:
    """Plain A2C's state (no meta-optimiser)."""
    return init_state(config, key)


def update(config: A2CConfig, data: Any, state: A2CState) -> tuple[A2CState, dict]:
    """`updates_per_iteration` A2C updates with the fixed hyperparameters of the config."""
    key, step_key = jax.random.split(state.key)
    body = lambda carry, k: inner_step(config, state.logits, carry, k)  # noqa: E731
    step, (_, metrics) = jax.lax.scan(body, state.step, jax.random.split(step_key, config.updates_per_iteration))
    return finish_iteration(config, state, step, metrics, key, state.logits, state.meta_opt_state)


def env_steps_per_iteration(config: A2CConfig) -> int:
    """Environment steps of one seed's iteration."""
    return config.updates_per_iteration * config.num_envs * config.num_steps


ALGORITHM = Algorithm(name="a2c", config_type=A2CConfig, init=init, update=update,
                      progress_metrics=("episode_return",), counters=("env_steps",), throughput_unit="env_steps",
                      work_per_iteration=env_steps_per_iteration)
