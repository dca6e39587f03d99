"""The run's set of modes found so far, as a bit set packed 32 modes to a uint32 word.

Packed because balanced parentheses of up to 32 tokens have about 49 million modes; a set of bools would be
the largest array of the train state.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def num_modes(env) -> int:
    """How many modes the environment defines (0 when it defines none)."""
    return getattr(env, "num_modes", 0)


def empty_mode_set(env) -> jax.Array:
    """A bit set over the environment's modes with none found."""
    return jnp.zeros((num_modes(env) + 31) // 32, jnp.uint32)


def _bit(index: jax.Array) -> jax.Array:
    return jnp.left_shift(jnp.uint32(1), (index % 32).astype(jnp.uint32))


def add_modes(env, env_params, modes_hit: jax.Array, final_states) -> jax.Array:
    """The mode bit set with the modes any of a batch of terminal states hits added."""
    if num_modes(env) == 0:
        return modes_hit
    if hasattr(env, "mode_index"):  # at most one mode per object, from a set too big for multi-hot rows
        index = jax.vmap(env.mode_index, (None, 0))(env_params, final_states)
        word = jnp.where(index < num_modes(env), index // 32, modes_hit.shape[0])
        # Objects sharing a word write that word together: each writes the OR of all their bits, so the
        # duplicate writes agree and the scatter is deterministic.
        same_word = word[:, None] == word[None, :]
        bits = jnp.where(same_word, _bit(index)[None, :], jnp.uint32(0))
        combined = jax.lax.reduce(bits, jnp.uint32(0), jax.lax.bitwise_or, (1,))
        return modes_hit.at[word].set(modes_hit.at[word].get(mode="fill", fill_value=0) | combined, mode="drop")
    hits = jnp.any(jax.vmap(env.mode_hits, (None, 0))(env_params, final_states), axis=0)
    padded = jnp.zeros(modes_hit.shape[0] * 32, bool).at[:hits.shape[0]].set(hits).reshape(-1, 32)
    words = jnp.sum(jnp.where(padded, _bit(jnp.arange(32)), jnp.uint32(0)), axis=1, dtype=jnp.uint32)
    return modes_hit | words


def modes_found(modes_hit: jax.Array) -> jax.Array:
    """How many modes a mode bit set holds."""
    return jnp.sum(jax.lax.population_count(modes_hit).astype(jnp.int32))
