"""Forward rollouts of a GFlowNet policy, and re-scoring of given trajectories under a policy.

Trajectories are stored batch-major with one row per visited state: row t holds s_t, the action taken at s_t
(-1 when none) and the backward action of the edge into s_t (-1 when its P_B is 1 or it does not exist).
Row `length` holds the terminated state; rows after it are padding.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fluxrl.envs.gflownet.base import DAGEnv
from fluxrl.gflownet.policy import MASKED_LOGIT, StateTerms, forward_log_probs, state_terms, terms_at


class Trajectories(NamedTuple):
    """A batch of complete trajectories, rows per visited state; see the module docstring."""

    states: Any  # env state pytree, leaves [B, T+1, ...]
    actions: jax.Array  # [B, T+1]
    prev_backward_actions: jax.Array  # [B, T+1]
    length: jax.Array  # [B] number of transitions
    log_reward: jax.Array  # [B]
    final_states: Any  # env state pytree, leaves [B, ...]: the terminated states x


def exploration_log_probs(log_pf_all: jax.Array, mask: jax.Array, epsilon: jax.Array,
                          temperature: jax.Array) -> jax.Array:
    """Log-probabilities of (1 - epsilon) * softmax(log P_F / temperature) + epsilon * uniform over valid."""
    tempered = jax.nn.log_softmax(jnp.where(mask, log_pf_all / temperature, MASKED_LOGIT))
    num_valid = jnp.maximum(jnp.sum(mask), 1)
    uniform = jnp.where(mask, -jnp.log(num_valid.astype(jnp.float32)), -jnp.inf)
    return jnp.logaddexp(jnp.log1p(-epsilon) + tempered, jnp.log(epsilon) + uniform)


def _rows(tree, index):
    """The leaves of a [B, ...] pytree written into row `index` of a [T+1, B, ...] buffer pytree."""
    return lambda buffer: jax.tree.map(lambda b, x: b.at[index].set(x), buffer, tree)


def sample_trajectories(policy, env: DAGEnv, env_params, key: jax.Array, batch_size: int,
                        uniform_pb: bool, epsilon=0.0, temperature=1.0) -> tuple[Trajectories, StateTerms]:
    """Roll out `batch_size` trajectories, stopping as soon as all have terminated.

    Returns the trajectories and the loss terms of `policy` at every row (no gradient flows through them:
    `policy_gradient` differentiates them afterwards)."""
    num_rows = env.max_length + 1
    reset_key, step_key = jax.random.split(key)
    states = jax.vmap(env.reset, (None, 0))(env_params, jax.random.split(reset_key, batch_size))
    forward_mask = jax.vmap(env.forward_mask)
    step_fn = jax.vmap(env.step)
    backward_action_fn = jax.vmap(env.backward_action)
    batched_log_probs = jax.vmap(lambda s: forward_log_probs(policy, env, s))
    batched_terms = jax.vmap(lambda *args: terms_at(env, uniform_pb, *args))

    buffers = (
        jax.tree.map(lambda x: jnp.broadcast_to(x, (num_rows,) + x.shape), states),
        jnp.full((num_rows, batch_size), -1, jnp.int32),
        jnp.full((num_rows, batch_size), -1, jnp.int32),
        StateTerms(*(jnp.zeros((num_rows, batch_size)) for _ in range(3))),
    )
    prev_backward = jnp.full((batch_size,), -1, jnp.int32)
    finished = jnp.zeros((batch_size,), bool)  # the terminated state's row has been written

    def cond(carry):
        row, _, _, finished, _ = carry
        return (row < num_rows) & ~jnp.all(finished)

    def body(carry):
        row, states, prev_backward, finished, (state_buf, action_buf, prev_buf, term_buf) = carry
        log_pf_all, log_pb_all, log_flow = batched_log_probs(states)
        masks = forward_mask(states)
        noise = jax.random.gumbel(jax.random.fold_in(step_key, row), log_pf_all.shape)
        explore = jax.vmap(exploration_log_probs, (0, 0, None, None))(log_pf_all, masks, epsilon, temperature)
        done = jax.vmap(env.is_terminal)(states)
        actions = jnp.where(done, -1, jnp.argmax(explore + noise, axis=-1).astype(jnp.int32))
        terms = batched_terms(states, log_pf_all, log_pb_all, log_flow, actions, prev_backward)
        buffers = (
            _rows(states, row)(state_buf), action_buf.at[row].set(actions),
            prev_buf.at[row].set(prev_backward), _rows(terms, row)(term_buf),
        )
        safe_actions = jnp.maximum(actions, 0)
        stepped = step_fn(states, safe_actions)
        next_states = jax.tree.map(
            lambda new, old: jnp.where(done.reshape((-1,) + (1,) * (new.ndim - 1)), old, new), stepped, states)
        next_prev = backward_action_fn(states, safe_actions).astype(jnp.int32)
        next_prev = jnp.where(done | (actions == env.exit_action), -1, next_prev)
        return row + 1, next_states, next_prev, finished | done, buffers

    _, final_states, _, _, (state_buf, action_buf, prev_buf, term_buf) = jax.lax.while_loop(
        cond, body, (jnp.int32(0), states, prev_backward, finished, buffers))
    batch_major = lambda tree: jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), tree)
    length = jnp.sum(action_buf >= 0, axis=0)
    log_reward = jax.vmap(env.log_reward, (None, 0))(env_params, final_states)
    trajectories = Trajectories(batch_major(state_buf), batch_major(action_buf), batch_major(prev_buf),
                                length, log_reward, final_states)
    return trajectories, batch_major(term_buf)


def score_trajectories(policy, env: DAGEnv, trajectories: Trajectories, uniform_pb: bool) -> StateTerms:
    """The loss terms of `policy` at every row of given trajectories (sampled by any policy)."""
    terms = jax.vmap(jax.vmap(lambda s, a, b: state_terms(policy, env, uniform_pb, s, a, b)))
    return terms(trajectories.states, trajectories.actions, trajectories.prev_backward_actions)
