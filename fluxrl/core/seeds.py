"""The seed axis name, and a reduction over it for loops that stop when a whole batch is done.

The runner loops over the seeds on each device (`lax.map`, see `devices.py`), so inside an update there is no
seed axis and a rollout's stopping predicate is the seed's own. Code that vmaps an algorithm over seeds itself
(benchmarks, tests) may name the axis `SEED_AXIS`: a per-seed predicate under vmap makes JAX select between old
and new values of every loop buffer at each step, which copies the buffers instead of updating them in place (a
16-seed rollout cost 50 single-seed ones); reducing the predicate over the named axis keeps the loop shared.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

SEED_AXIS = "seed"


def all_seeds(flag: jax.Array) -> jax.Array:
    """`flag` ANDed over the seeds vmapped under SEED_AXIS (the flag itself where no such axis is bound)."""
    try:
        jax.lax.axis_size(SEED_AXIS)
    except NameError:  # no vmap over seeds named SEED_AXIS around this call
        return flag
    return jax.lax.pmin(flag.astype(jnp.int32), SEED_AXIS).astype(bool)
