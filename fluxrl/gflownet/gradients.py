"""The policy gradient of a trajectory loss, from the loss's cotangents on the per-state terms.

A trajectory loss depends on the policy only through the per-state terms (log P_F, log P_B, log F). The sampler
has already computed those terms, so the loss value and its cotangents come for free; what remains is the
vector-Jacobian product of the policy at each visited state. This module computes it over only the states whose
cotangent is non-zero, packed densely into fixed-size chunks, so padding rows of short trajectories cost nothing,
and back-propagates through the outputs and activations the sampler kept, so no forward pass is repeated.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp

from fluxrl.envs.gflownet.base import DAGEnv
from fluxrl.gflownet.policy import StateTerms, policy_input, policy_param_vjp, terms_from_outputs
from fluxrl.gflownet.sampler import Trajectories


def policy_gradient(policy_params, policy_static, env: DAGEnv, trajectories: Trajectories,
                    cotangents: StateTerms, uniform_pb: bool, chunk_rows: int):
    """Sum over visited states of the policy's vector-Jacobian product with the terms' cotangents.

    `trajectories` must have been sampled by this policy: its kept outputs and activations are back-propagated."""
    flat = lambda x: x.reshape((-1,) + x.shape[2:])
    states, actions, prev_backward, outputs, activations, cotangents = jax.tree.map(flat, (
        trajectories.states, trajectories.actions, trajectories.prev_backward_actions, trajectories.policy_outputs,
        trajectories.policy_activations, cotangents))
    num_rows = actions.shape[0]

    # Pack the rows that carry a non-zero cotangent to the front; the others contribute exactly zero.
    active = (cotangents.log_pf != 0) | (cotangents.log_pb != 0) | (cotangents.log_flow != 0)
    num_active = jnp.sum(active)
    slot = jnp.where(active, jnp.cumsum(active) - 1, num_rows)
    order = jnp.zeros(num_rows + chunk_rows, jnp.int32).at[slot].set(jnp.arange(num_rows, dtype=jnp.int32),
                                                                      mode="drop")

    policy = eqx.combine(policy_params, policy_static)
    inputs_at = jax.vmap(functools.partial(policy_input, policy, env))
    terms_of_outputs = jax.vmap(functools.partial(terms_from_outputs, env, uniform_pb))

    def chunk_gradient(start, size):
        rows = jax.lax.dynamic_slice(order, (start,), (size,))
        in_use = start + jnp.arange(size) < num_active
        take = lambda tree: jax.tree.map(lambda x: x[rows], tree)
        chunk_states = take(states)
        chunk_cotangents = jax.tree.map(lambda c: jnp.where(in_use, c[rows], 0.0), cotangents)
        _, head_vjp = jax.vjp(lambda out: terms_of_outputs(chunk_states, out, actions[rows], prev_backward[rows]),
                              take(outputs))
        (out_cotangent,) = head_vjp(chunk_cotangents)
        return policy_param_vjp(policy_params, policy_static, inputs_at(chunk_states), take(activations),
                                out_cotangent)

    def add_chunks(start, stop, size, grads):
        """`grads` plus the gradient of packed rows [start, stop), in chunks of `size` rows."""
        def body(carry):
            start, grads = carry
            return start + size, jax.tree.map(jnp.add, grads, chunk_gradient(start, size))

        return jax.lax.while_loop(lambda carry: carry[0] < stop, body, (start, grads))

    # Full chunks, then the remainder in quarter chunks: the work follows the number of visited states more
    # closely than whole chunks would, at the price of a few more (smaller) matrix products.
    zeros = jax.tree.map(jnp.zeros_like, policy_params)
    start, grads = add_chunks(jnp.int32(0), num_active - num_active % chunk_rows, chunk_rows, zeros)
    _, grads = add_chunks(start, num_active, max(chunk_rows // 4, 1), grads)
    return grads
