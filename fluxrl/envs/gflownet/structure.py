"""Bayesian structure learning: build a DAG over d variables one edge at a time (Deleu et al. 2022).

A state is a directed acyclic graph on `num_nodes` = d nodes, starting from the empty graph. Forward action
i * d + j adds the edge i -> j when it is absent, i != j, and j does not already reach i (so the graph stays
acyclic); action d * d exits. Backward action i * d + j removes the existing edge i -> j. The state keeps the
transitive closure (`closure[i, j]`: a directed path of length >= 1 leads from i to j) next to the adjacency, so
the forward mask costs O(d^2); a forward step updates it in O(d^2), a backward step recomputes it by boolean
matrix squaring.

The reward is the BGe marginal likelihood of data generated from a seeded ground-truth linear-Gaussian DAG,
with a uniform prior over graphs: log R(G) = sum_j local[j, parents_j(G)] (by default each node's entries are
taken relative to its best parent set, which changes no posterior probability; see `structure_params`).
Because the score is decomposable, `structure_params` precomputes on the host (float64) the table
local[j, parent bitmask] over all 2^d parent subsets, so `log_reward` is d table lookups.

`StructureLearning` does not list its states. `EnumerableStructureLearning` (d <= 5; `structure_env` picks the
right class) adds `all_states`, `terminal_states`, `state_index` and `num_states`, for exact metrics. Beside this
file: the BGe score in `bge_score.py`, the transitive closure and the list of every DAG in `dag_enumeration.py`,
and the graph-level metrics (expected SHD, edge marginals, edge AUC, exact posterior) in `structure_metrics.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fluxrl.core.config import ConfigError, check_choice, check_range
from fluxrl.envs.gflownet.bge_score import BGePrior, bge_local_scores
from fluxrl.envs.gflownet.dag_enumeration import (MAX_ENUMERABLE_NODES, NUM_DAGS, dag_adjacencies, dag_codes,
                                                  transitive_closure)

# The parent-set table has num_nodes * 2**num_nodes entries; above this many nodes it is not built.
MAX_SCORED_NODES = 16
# How the ground truth's edge weights are drawn: "ones" is what the official LGGFN sampler applies (it sums the
# parents unweighted, src/envs/helpers/bayesian_structure/sampling.py:61-69, although graph.py:110-115 draws
# N(0, 1) weights it never uses); "normal" those N(0, 1) weights; "signed_uniform" fluxrl's earlier
# +-U[0.5, 2] (Deleu et al. 2022's choice of magnitudes away from zero).
EDGE_WEIGHTS = ("ones", "normal", "signed_uniform")


class StructureState(NamedTuple):
    """The adjacency (adjacency[i, j]: edge i -> j), its transitive closure, both bool [d, d], and whether the
    exit action has been taken."""

    adjacency: jax.Array
    closure: jax.Array
    terminated: jax.Array


class StructureParams(NamedTuple):
    """BGe local scores, float32 [d, 2**d]: local_scores[j, m] is the score of node j with parent set m (bit i of
    m set when i is a parent); -inf where bit j of m is set (j cannot be its own parent)."""

    local_scores: jax.Array


@dataclass(frozen=True)
class StructureLearning:
    """DAGs on num_nodes nodes; action i * d + j adds edge i -> j, action d * d exits.

    num_samples observations are generated (see `sample_data`) from a ground-truth DAG with
    round(edge_density * d (d - 1) / 2) edges, edge weights drawn as `edge_weights` says and Gaussian noise of
    standard deviation noise_std (by default the official LGGFN code's: unit weights, noise 0.1), all from the
    numpy seed graph_seed."""

    num_nodes: int = 5
    num_samples: int = 100
    graph_seed: int = 0
    edge_density: float = 0.4
    edge_weights: str = "ones"
    noise_std: float = 0.1

    def __post_init__(self):
        for name in ("num_nodes", "num_samples", "graph_seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{name} must be an integer, got {value!r}.")
        if not 1 <= self.num_nodes <= MAX_SCORED_NODES:
            raise ConfigError(f"num_nodes must be between 1 and {MAX_SCORED_NODES}, got {self.num_nodes}.")
        if self.num_samples < 1:
            raise ConfigError(f"num_samples must be >= 1, got {self.num_samples}.")
        if self.graph_seed < 0:
            raise ConfigError(f"graph_seed must be >= 0, got {self.graph_seed}.")
        check_range("edge_density", self.edge_density, 0.0, 1.0)
        check_choice("edge_weights", self.edge_weights, EDGE_WEIGHTS)
        check_range("noise_std", self.noise_std, 0.0, low_open=True)

    @property
    def num_actions(self) -> int:
        return self.num_nodes**2 + 1

    @property
    def num_backward_actions(self) -> int:
        return self.num_nodes**2

    @property
    def exit_action(self) -> int:
        return self.num_nodes**2

    @property
    def max_length(self) -> int:
        return self.num_nodes * (self.num_nodes - 1) // 2 + 1

    @property
    def obs_size(self) -> int:
        return self.num_nodes**2

    @property
    def num_edges(self) -> int:
        """Edges of the ground-truth graph: round(edge_density * d (d - 1) / 2)."""
        return int(math.floor(self.edge_density * self.num_nodes * (self.num_nodes - 1) / 2 + 0.5))

    def default_params(self) -> StructureParams:
        """BGe scores of data sampled from the seeded ground-truth graph."""
        return structure_params(self)

    def reset(self, params: StructureParams, key: jax.Array) -> StructureState:
        """The empty graph, not yet terminated."""
        del params, key
        empty = jnp.zeros((self.num_nodes, self.num_nodes), bool)
        return StructureState(empty, empty, jnp.array(False))

    def forward_mask(self, state: StructureState) -> jax.Array:
        """Edges i -> j that are absent, not self-loops and close no cycle (j does not reach i), and exit;
        nothing after termination."""
        eye = jnp.eye(self.num_nodes, dtype=bool)
        edges = ~state.adjacency & ~state.closure.T & ~eye
        return jnp.append(edges.reshape(-1), True) & ~state.terminated

    def backward_mask(self, state: StructureState) -> jax.Array:
        """Every existing edge can be removed."""
        return state.adjacency.reshape(-1)

    def step(self, state: StructureState, action: jax.Array) -> StructureState:
        """Add edge action // d -> action % d, or mark terminated when `action` is the exit.

        The closure gains every pair (a, b) with a reaching i (or a = i) and j reaching b (or b = j)."""
        d = self.num_nodes
        is_exit = action == self.exit_action
        new_edge = jax.nn.one_hot(action, d * d, dtype=bool).reshape(d, d)  # all False for the exit action
        source, target = jnp.minimum(action // d, d - 1), action % d
        nodes = jnp.arange(d)
        ancestors = state.closure[:, source] | (nodes == source)
        descendants = state.closure[target, :] | (nodes == target)
        closure = state.closure | (ancestors[:, None] & descendants[None, :] & ~is_exit)
        return StructureState(state.adjacency | new_edge, closure, state.terminated | is_exit)

    def backward_step(self, state: StructureState, backward_action: jax.Array) -> StructureState:
        """Remove edge backward_action // d -> backward_action % d, and recompute the closure."""
        d = self.num_nodes
        removed = jax.nn.one_hot(backward_action, d * d, dtype=bool).reshape(d, d)
        adjacency = state.adjacency & ~removed
        return StructureState(adjacency, transitive_closure(adjacency), jnp.array(False))

    def backward_action(self, state: StructureState, action: jax.Array) -> jax.Array:
        """The removal that undoes adding edge `action`: the same index (undefined for exit, whose P_B is 1)."""
        del state
        return jnp.minimum(action, self.num_nodes**2 - 1)

    def is_terminal(self, state: StructureState) -> jax.Array:
        """Whether the exit action has been taken."""
        return state.terminated

    def parent_masks(self, state: StructureState) -> jax.Array:
        """int32 [d]: bit i of entry j is set when i -> j is an edge."""
        shifts = jnp.arange(self.num_nodes, dtype=jnp.int32)[:, None]
        return jnp.sum(state.adjacency.astype(jnp.int32) << shifts, axis=0)

    def log_reward(self, params: StructureParams, state: StructureState) -> jax.Array:
        """log R(G) = sum_j local_scores[j, parents_j(G)]: the BGe log marginal likelihood, uniform graph prior."""
        return jnp.sum(params.local_scores[jnp.arange(self.num_nodes), self.parent_masks(state)])

    def obs(self, state: StructureState) -> jax.Array:
        """float32 [d * d]: the adjacency, row-major (entry i * d + j is edge i -> j); the closure is left out,
        since it is a function of the adjacency and the forward mask already carries what it decides."""
        return state.adjacency.reshape(-1).astype(jnp.float32)


@dataclass(frozen=True)
class EnumerableStructureLearning(StructureLearning):
    """`StructureLearning` for d <= 5, which also lists every DAG for exact metrics.

    States are indexed by the rank of their adjacency bit code (bit i * d + j for edge i -> j) among the codes of
    all DAGs on d nodes; a terminated graph has the index of the same graph before exit."""

    def __post_init__(self):
        super().__post_init__()
        if self.num_nodes > MAX_ENUMERABLE_NODES:
            raise ConfigError(f"num_nodes must be <= {MAX_ENUMERABLE_NODES} to enumerate every DAG, "
                              f"got {self.num_nodes}; use StructureLearning instead.")

    @property
    def num_states(self) -> int:
        return NUM_DAGS[self.num_nodes]

    def all_states(self) -> StructureState:
        """Every DAG as a non-terminated state, in the order of state_index."""
        adjacency = dag_adjacencies(self.num_nodes)
        closure = transitive_closure(adjacency, np)
        return StructureState(jnp.asarray(adjacency), jnp.asarray(closure), jnp.zeros(len(adjacency), bool))

    def terminal_states(self) -> StructureState:
        """Every DAG after the exit action, in the order of state_index."""
        return self.all_states()._replace(terminated=jnp.ones(self.num_states, bool))

    def state_index(self, state: StructureState) -> jax.Array:
        """Rank of the adjacency bit code among all DAG codes (clipped into range for cyclic graphs, which are
        never reached by a masked action)."""
        codes = jnp.asarray(dag_codes(self.num_nodes))
        bits = jnp.arange(self.num_nodes**2, dtype=jnp.int32)
        code = jnp.sum(state.adjacency.reshape(-1).astype(jnp.int32) << bits)
        return jnp.minimum(jnp.searchsorted(codes, code), self.num_states - 1).astype(jnp.int32)


def structure_env(num_nodes: int = 5, num_samples: int = 100, graph_seed: int = 0,
                  edge_density: float = 0.4, edge_weights: str = "ones", noise_std: float = 0.1) -> StructureLearning:
    """An `EnumerableStructureLearning` when num_nodes <= 5 (exact metrics), else a `StructureLearning`."""
    cls = EnumerableStructureLearning if isinstance(num_nodes, int) and num_nodes <= MAX_ENUMERABLE_NODES \
        else StructureLearning
    return cls(num_nodes, num_samples, graph_seed, edge_density, edge_weights, noise_std)


def generate_dataset(env: StructureLearning) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(adjacency bool [d, d], weights float64 [d, d], data float64 [num_samples, d]) of the seeded ground truth.

    All drawn in this order from numpy's default_rng(graph_seed): a random topological order; env.num_edges of
    the d (d - 1) / 2 forward pairs, chosen uniformly; the weights (env.edge_weights: "ones" draws nothing,
    "normal" N(0, 1), "signed_uniform" magnitudes uniform on [0.5, 2] and uniform signs); Gaussian noise of
    standard deviation env.noise_std. The data follow x_j = sum_i w_ij x_i + e_j, by ancestral sampling, and
    are not standardised."""
    rng = np.random.default_rng(env.graph_seed)
    d = env.num_nodes
    order = rng.permutation(d)
    pairs = [(order[a], order[b]) for a in range(d) for b in range(a + 1, d)]
    chosen = rng.choice(len(pairs), size=env.num_edges, replace=False)
    adjacency = np.zeros((d, d), bool)
    for index in chosen:
        adjacency[pairs[index]] = True
    if env.edge_weights == "signed_uniform":
        magnitudes = rng.uniform(0.5, 2.0, size=(d, d))
        drawn = magnitudes * rng.choice((-1.0, 1.0), size=(d, d))
    elif env.edge_weights == "normal":
        drawn = rng.standard_normal((d, d))
    else:
        drawn = np.ones((d, d))
    weights = np.where(adjacency, drawn, 0.0)
    noise = env.noise_std * rng.standard_normal((env.num_samples, d))
    data = np.zeros((env.num_samples, d))
    for node in order:  # parents come earlier in the order, so their columns are already filled
        data[:, node] = data @ weights[:, node] + noise[:, node]
    return adjacency, weights, data


def ground_truth_adjacency(env: StructureLearning) -> np.ndarray:
    """bool [d, d]: the seeded ground-truth DAG (adjacency[i, j]: edge i -> j) the data come from."""
    return generate_dataset(env)[0]


def sample_data(env: StructureLearning) -> np.ndarray:
    """float64 [num_samples, d]: the seeded linear-Gaussian observations (see `generate_dataset`)."""
    return generate_dataset(env)[2]


def structure_params(env: StructureLearning, data=None, prior: BGePrior = BGePrior(),
                     reference: str = "best") -> StructureParams:
    """BGe local-score table of `data` (float [N, d]), or of `sample_data(env)` when data is None.

    `reference` subtracts a per-node constant, which leaves every posterior probability unchanged but moves
    log R: "best" (default) subtracts each node's best local score, so log R(G) <= 0 for every DAG and the
    true log Z is at most log(#DAGs); "empty" makes log R(G) the log Bayes factor of G against the empty graph
    (log R then reaches the hundreds with 100 samples); "none" keeps the raw BGe log marginal likelihood.
    Why "best": TB's log Z starts at 0, and a log Z that starts above its target makes the loss push
    probability away from what was sampled (exploration), while one that starts far below it pulls the policy
    onto its first samples (collapse); with "empty" the learned model collapsed onto one graph."""
    if reference not in ("best", "empty", "none"):
        raise ConfigError(f"reference must be 'best', 'empty' or 'none', got {reference!r}.")
    data = sample_data(env) if data is None else np.asarray(data, np.float64)
    if data.ndim != 2 or data.shape[1] != env.num_nodes or data.shape[0] < 1:
        raise ConfigError(f"data must have shape (num_samples, num_nodes = {env.num_nodes}), got {data.shape}.")
    if not np.isfinite(data).all():
        raise ConfigError("data must be finite.")
    local = bge_local_scores(data, prior)
    if reference == "best":
        local = local - local.max(axis=1, keepdims=True)
    elif reference == "empty":
        local = local - local[:, :1]
    return StructureParams(jnp.asarray(local, jnp.float32))
