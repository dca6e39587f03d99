"""The policy gradient of a trajectory loss, from the loss's cotangents on the per-state terms.

A trajectory loss depends on the policy only through the per-state terms (log P_F, log P_B, log F). The sampler
has already computed those terms, so the loss value and its cotangents come for free; what remains is the
vector-Jacobian product of the policy at each visited state. This module computes it over only the states whose
cotangent is non-zero, packed densely into fixed-size chunks, so padding rows of short trajectories cost nothing.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from fluxrl.envs.gflownet.base import DAGEnv
from fluxrl.gflownet.policy import StateTerms, state_terms
from fluxrl.gflownet.sampler import Trajectories


def policy_gradient(policy_params, policy_static, env: DAGEnv, trajectories: Trajectories,
                    cotangents: StateTerms, uniform_pb: bool, chunk_rows: int):
    """Sum over visited states of the policy's vector-Jacobian product with the terms' cotangents."""
    flat = lambda x: x.reshape((-1,) + x.shape[2:])
    states = jax.tree.map(flat, trajectories.states)
    actions = flat(trajectories.actions)
    prev_backward = flat(trajectories.prev_backward_actions)
    cotangents = jax.tree.map(flat, cotangents)
    num_rows = actions.shape[0]

    # Pack the rows that carry a non-zero cotangent to the front; the others contribute exactly zero.
    active = (cotangents.log_pf != 0) | (cotangents.log_pb != 0) | (cotangents.log_flow != 0)
    num_active = jnp.sum(active)
    num_chunks = -(-num_rows // chunk_rows)
    slot = jnp.where(active, jnp.cumsum(active) - 1, num_rows)
    order = jnp.zeros(num_chunks * chunk_rows, jnp.int32).at[slot].set(
        jnp.arange(num_rows, dtype=jnp.int32), mode="drop")

    def chunk_terms(params, rows):
        policy = eqx.combine(params, policy_static)
        terms = jax.vmap(lambda s, a, b: state_terms(policy, env, uniform_pb, s, a, b))
        return terms(jax.tree.map(lambda x: x[rows], states), actions[rows], prev_backward[rows])

    def body(carry):
        chunk, grads = carry
        start = chunk * chunk_rows
        rows = jax.lax.dynamic_slice(order, (start,), (chunk_rows,))
        in_use = start + jnp.arange(chunk_rows) < num_active
        chunk_cotangents = jax.tree.map(lambda c: jnp.where(in_use, c[rows], 0.0), cotangents)
        _, vjp = jax.vjp(lambda p: chunk_terms(p, rows), policy_params)
        (chunk_grads,) = vjp(chunk_cotangents)
        return chunk + 1, jax.tree.map(jnp.add, grads, chunk_grads)

    zeros = jax.tree.map(jnp.zeros_like, policy_params)
    needed = -(-num_active // chunk_rows)
    _, grads = jax.lax.while_loop(lambda c: c[0] < needed, body, (jnp.int32(0), zeros))
    return grads
