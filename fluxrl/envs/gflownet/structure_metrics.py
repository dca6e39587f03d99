"""Graph-level metrics for Bayesian structure learning (Deleu et al. 2022), over enumerated DAGs.

A distribution p over graphs is an array indexed by `EnumerableStructureLearning.state_index` (for instance
the output of `fluxrl.gflownet.metrics.exact_terminal_distribution`), and `graphs` the matching bool adjacencies
[S, d, d] from `enumerated_graphs(env)`. All functions are plain numpy.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from fluxrl.envs.gflownet.dag_enumeration import dag_adjacencies
from fluxrl.envs.gflownet.structure import EnumerableStructureLearning, StructureParams, ground_truth_adjacency


def enumerated_graphs(env: EnumerableStructureLearning) -> np.ndarray:
    """bool [num_states, d, d]: every DAG on env.num_nodes nodes, in state_index order."""
    return dag_adjacencies(env.num_nodes)


def structural_hamming_distances(graphs: np.ndarray, true_adj: np.ndarray) -> np.ndarray:
    """int [S]: for each graph [S, d, d] (or one [d, d], giving a scalar array), the number of edge additions,
    removals and reversals that turn it into true_adj; a reversal counts once.

    Counted as the number of unordered pairs {i, j} whose edge state (none, i -> j or j -> i) differs."""
    graphs = np.asarray(graphs, bool)
    diff = graphs != np.asarray(true_adj, bool)
    pair_differs = diff | np.swapaxes(diff, -1, -2)
    upper = np.triu(np.ones(diff.shape[-2:], bool), k=1)
    return (pair_differs & upper).sum(axis=(-1, -2))


def expected_shd(p: np.ndarray, graphs: np.ndarray, true_adj: np.ndarray) -> float:
    """E_{G ~ p}[SHD(G, true_adj)], with p renormalised to sum to 1."""
    p = np.asarray(p, np.float64)
    return float(np.dot(p, structural_hamming_distances(graphs, true_adj)) / p.sum())


def edge_marginals(p: np.ndarray, graphs: np.ndarray) -> np.ndarray:
    """float64 [d, d]: P_{G ~ p}(i -> j in G), with p renormalised to sum to 1."""
    p = np.asarray(p, np.float64)
    return np.tensordot(p, np.asarray(graphs, np.float64), axes=1) / p.sum()


def edge_auc(marginals: np.ndarray, true_adj: np.ndarray) -> float:
    """ROC-AUC of the off-diagonal edge marginals as scores for the true edges (ties count one half), by the
    Mann-Whitney rank formula; nan when the true graph has no edge or every pair is an edge."""
    off_diagonal = ~np.eye(np.asarray(true_adj).shape[0], dtype=bool)
    scores = np.asarray(marginals, np.float64)[off_diagonal]
    labels = np.asarray(true_adj, bool)[off_diagonal]
    num_pos, num_neg = int(labels.sum()), int((~labels).sum())
    if num_pos == 0 or num_neg == 0:
        return float("nan")
    ranks = rankdata(scores)  # average ranks for ties
    return float((ranks[labels].sum() - num_pos * (num_pos + 1) / 2) / (num_pos * num_neg))


def exact_posterior(env: EnumerableStructureLearning, params: StructureParams) -> np.ndarray:
    """float64 [num_states]: P(G | D) proportional to exp(log R(G)) (BGe, uniform graph prior), in state_index
    order; computed in float64 from the stored float32 local-score table."""
    graphs = enumerated_graphs(env)
    local = np.asarray(params.local_scores, np.float64)
    masks = np.sum(graphs.astype(np.int64) << np.arange(env.num_nodes)[:, None], axis=1)  # [S, d]
    log_rewards = local[np.arange(env.num_nodes), masks].sum(axis=1)
    weights = np.exp(log_rewards - log_rewards.max())
    return weights / weights.sum()


def graph_metrics(env: EnumerableStructureLearning, p: np.ndarray) -> dict[str, float]:
    """`expected_shd` and `edge_auc` of a distribution p over env's graphs, against env's ground-truth DAG;
    `edge_auc` is left out when it is undefined (a true graph with no edge, as for 1 or 2 nodes at the default
    edge density, or with no non-edge), so no run reports or stops on a NaN (see docs/metrics.md)."""
    graphs, truth = enumerated_graphs(env), ground_truth_adjacency(env)
    results = {"expected_shd": expected_shd(p, graphs, truth)}
    auc = edge_auc(edge_marginals(p, graphs), truth)
    if not np.isnan(auc):
        results["edge_auc"] = auc
    return results
