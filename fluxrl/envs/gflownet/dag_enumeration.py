"""Directed acyclic graphs as boolean adjacency arrays: transitive closure, and every DAG on up to 5 nodes.

adjacency[i, j] is the edge i -> j. A graph on d nodes has the bit code sum of 2**(i * d + j) over its edges;
the DAGs on d <= MAX_ENUMERABLE_NODES nodes are listed in increasing order of their codes, which is the state
order of `EnumerableStructureLearning`.
"""

from __future__ import annotations

import functools
import math

import jax.numpy as jnp
import numpy as np

# The number of DAGs grows super-exponentially (29281 for 5 nodes, 3781503 for 6); above this, no enumeration.
MAX_ENUMERABLE_NODES = 5
# Number of labelled DAGs on d nodes (OEIS A003024), d = 0..MAX_ENUMERABLE_NODES.
NUM_DAGS = (1, 1, 3, 25, 543, 29281)


def transitive_closure(adjacency, xp=jnp):
    """bool [..., d, d] reachability by paths of length >= 1, by ceil(log2 d) rounds of R <- R | R @ R; `xp` is
    jax.numpy (traced) or numpy (host-side enumeration of every graph)."""
    d = adjacency.shape[-1]
    reach = adjacency.astype(xp.float32)
    for _ in range(math.ceil(math.log2(d))):  # paths of length up to 2**rounds >= d - 1
        reach = xp.minimum(reach + reach @ reach, 1.0)
    return reach > 0


@functools.lru_cache(maxsize=None)
def dag_codes(num_nodes: int) -> np.ndarray:
    """Sorted int32 bit codes (bit i * d + j for edge i -> j) of every DAG on num_nodes <= 5 nodes."""
    d = num_nodes
    off_diagonal = np.flatnonzero(~np.eye(d, dtype=bool).reshape(-1))
    candidates = np.arange(2 ** len(off_diagonal), dtype=np.int64)
    codes = np.zeros_like(candidates)
    for k, position in enumerate(off_diagonal):
        codes |= ((candidates >> k) & 1) << position
    adjacency = ((codes[:, None] >> np.arange(d * d)) & 1).reshape(-1, d, d).astype(bool)
    acyclic = ~np.diagonal(transitive_closure(adjacency, np), axis1=1, axis2=2).any(axis=1)
    result = np.sort(codes[acyclic]).astype(np.int32)
    assert len(result) == NUM_DAGS[d]
    return result


def dag_adjacencies(num_nodes: int) -> np.ndarray:
    """bool [num_states, d, d]: every DAG on num_nodes <= 5 nodes, in state_index order."""
    d = num_nodes
    codes = dag_codes(d).astype(np.int64)
    return ((codes[:, None] >> np.arange(d * d)) & 1).reshape(-1, d, d).astype(bool)
