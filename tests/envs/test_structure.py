"""Property tests of the Bayesian structure learning (DAG) environment, its BGe score and its graph metrics."""

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import gammaln

from fluxrl.core.config import ConfigError
from fluxrl.envs.gflownet.base import is_enumerable
from fluxrl.envs.gflownet.bge_score import bge_local_scores
from fluxrl.envs.gflownet.structure import (EnumerableStructureLearning, StructureLearning, generate_dataset,
                                            ground_truth_adjacency, structure_env, structure_params)
from fluxrl.envs.gflownet.structure_metrics import (edge_auc, edge_marginals, enumerated_graphs, exact_posterior,
                                                    expected_shd, graph_metrics, structural_hamming_distances)
from fluxrl.gflownet.metrics import target_distribution, transition_table


@functools.lru_cache(maxsize=None)
def _jitted(env):
    return jax.jit(env.forward_mask), jax.jit(env.step), jax.jit(env.backward_step)


def _reachability(adj):
    """Paths of length >= 1, by Floyd-Warshall (independent of the env's closure code)."""
    reach = np.array(adj, bool)
    for k in range(len(reach)):
        reach |= reach[:, [k]] & reach[[k], :]
    return reach


def _is_acyclic(adj):
    """A graph is a DAG iff its adjacency matrix is nilpotent."""
    a = np.asarray(adj, np.int64)
    return not np.linalg.matrix_power(a, len(a)).any()


def _random_walk(env, seed, num_steps):
    """States visited by num_steps uniformly random valid edge additions from the empty graph."""
    mask_fn, step_fn, _ = _jitted(env)
    rng = np.random.default_rng(seed)
    state = env.reset(None, jax.random.PRNGKey(0))
    states = [state]
    for _ in range(num_steps):
        edges = np.flatnonzero(np.asarray(mask_fn(state))[:env.exit_action])
        if len(edges) == 0:
            break
        state = step_fn(state, jnp.int32(rng.choice(edges)))
        states.append(state)
    return states


walks = st.tuples(st.integers(1, 6), st.integers(0, 2**31 - 1), st.integers(0, 15))


@pytest.mark.parametrize("d, count", [(1, 1), (2, 3), (3, 25), (4, 543)])
def test_enumeration_lists_every_dag_once_in_state_index_order(d, count):
    env = structure_env(d)
    assert is_enumerable(env) and env.num_states == count
    states = env.all_states()
    adjacency = np.asarray(states.adjacency)
    assert adjacency.shape == (count, d, d)
    assert len({a.tobytes() for a in adjacency}) == count
    assert all(_is_acyclic(a) for a in adjacency)
    for a, closure in zip(adjacency, np.asarray(states.closure)):
        np.testing.assert_array_equal(closure, _reachability(a))
    np.testing.assert_array_equal(jax.vmap(env.state_index)(states), np.arange(count))
    np.testing.assert_array_equal(jax.vmap(env.state_index)(env.terminal_states()), np.arange(count))
    assert bool(np.asarray(env.terminal_states().terminated).all())
    assert not bool(np.asarray(states.terminated).any())


def test_five_nodes_have_29281_dags():
    env = structure_env(5)
    assert env.num_states == 29281 == len(enumerated_graphs(env))


def test_large_graphs_are_not_enumerable():
    env = structure_env(6)
    assert type(env) is StructureLearning and not is_enumerable(env)
    with pytest.raises(ConfigError, match="num_nodes"):
        EnumerableStructureLearning(num_nodes=6)


@settings(max_examples=30, deadline=None)
@given(walk=walks)
def test_random_valid_actions_keep_the_graph_acyclic_and_the_closure_exact(walk):
    d, seed, num_steps = walk
    env = StructureLearning(num_nodes=d)
    for state in _random_walk(env, seed, num_steps):
        adjacency = np.asarray(state.adjacency)
        assert _is_acyclic(adjacency)
        np.testing.assert_array_equal(np.asarray(state.closure), _reachability(adjacency))
    assert adjacency.sum() <= env.max_length - 1


@settings(max_examples=30, deadline=None)
@given(walk=walks)
def test_forward_mask_allows_exactly_the_absent_edges_that_keep_a_dag(walk):
    d, seed, num_steps = walk
    env = StructureLearning(num_nodes=d)
    mask_fn, step_fn, _ = _jitted(env)
    state = _random_walk(env, seed, num_steps)[-1]
    adjacency = np.asarray(state.adjacency)
    mask = np.asarray(mask_fn(state))
    assert mask.shape == (env.num_actions,) and mask[env.exit_action]
    for i, j in itertools.product(range(d), range(d)):
        added = adjacency.copy()
        added[i, j] = True
        assert mask[i * d + j] == (i != j and not adjacency[i, j] and _is_acyclic(added)), (i, j)
    np.testing.assert_array_equal(np.asarray(env.backward_mask(state)), adjacency.reshape(-1))
    terminated = step_fn(state, jnp.int32(env.exit_action))
    assert bool(terminated.terminated) and not np.asarray(mask_fn(terminated)).any()
    np.testing.assert_array_equal(np.asarray(terminated.adjacency), adjacency)


@settings(max_examples=30, deadline=None)
@given(walk=walks, data=st.data())
def test_backward_step_inverts_step(walk, data):
    d, seed, num_steps = walk
    env = StructureLearning(num_nodes=d)
    mask_fn, step_fn, backward_fn = _jitted(env)
    state = _random_walk(env, seed, num_steps)[-1]
    valid = np.flatnonzero(np.asarray(mask_fn(state))[:env.exit_action])
    if len(valid) == 0:
        return
    action = jnp.int32(data.draw(st.sampled_from(list(valid))))
    child = step_fn(state, action)
    undo = env.backward_action(state, action)
    assert int(undo) == int(action) and bool(env.backward_mask(child)[undo])
    parent = backward_fn(child, undo)
    np.testing.assert_array_equal(np.asarray(parent.adjacency), np.asarray(state.adjacency))
    np.testing.assert_array_equal(np.asarray(parent.closure), np.asarray(state.closure))
    assert not bool(parent.terminated)


@settings(max_examples=20, deadline=None)
@given(d=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_every_random_rollout_terminates_within_max_length(d, seed):
    env = StructureLearning(num_nodes=d)
    mask_fn, step_fn, _ = _jitted(env)
    rng = np.random.default_rng(seed)
    state = env.reset(None, jax.random.PRNGKey(0))
    for _ in range(env.max_length):
        state = step_fn(state, jnp.int32(rng.choice(np.flatnonzero(np.asarray(mask_fn(state))))))
        if bool(env.is_terminal(state)):
            break
    assert bool(env.is_terminal(state))
    assert np.asarray(env.obs(state)).shape == (env.obs_size,)


def test_the_complete_dag_is_reachable_in_max_length_steps():
    env = StructureLearning(num_nodes=5)
    state = env.reset(None, jax.random.PRNGKey(0))
    for i, j in itertools.combinations(range(5), 2):
        assert bool(env.forward_mask(state)[i * 5 + j])
        state = env.step(state, jnp.int32(i * 5 + j))
    assert np.asarray(env.forward_mask(state))[:env.exit_action].sum() == 0
    state = env.step(state, jnp.int32(env.exit_action))
    assert int(np.asarray(state.adjacency).sum()) + 1 == env.max_length


def _reference_bge_local(data, node, parents, alpha_mu=1.0):
    """The BGe local score in the closed form of Kuipers, Moffa & Heckerman (2014), written out directly."""
    n, d = data.shape
    alpha_w = d + 2.0
    t = alpha_mu * (alpha_w - d - 1) / (alpha_mu + 1)
    mean = data.mean(axis=0)
    scatter = n * np.cov(data.T, bias=True).reshape(d, d)
    r = t * np.eye(d) + scatter + n * alpha_mu / (n + alpha_mu) * np.outer(mean, mean)
    l = len(parents)
    family = list(parents) + [node]

    def logdet(idx):
        return np.linalg.slogdet(r[np.ix_(idx, idx)])[1] if idx else 0.0

    return (-n / 2 * np.log(np.pi) + 0.5 * np.log(alpha_mu / (n + alpha_mu))
            + gammaln((n + alpha_w - d + l + 1) / 2) - gammaln((alpha_w - d + l + 1) / 2)
            + (alpha_w - d + 2 * l + 1) / 2 * np.log(t)
            + (n + alpha_w - d + l) / 2 * logdet(list(parents))
            - (n + alpha_w - d + l + 1) / 2 * logdet(family))


@pytest.mark.parametrize("d, n", [(2, 5), (3, 7), (4, 12)])
def test_bge_table_matches_the_closed_form_on_tiny_data(d, n):
    data = np.random.default_rng(d).normal(size=(n, d)) + np.arange(d)
    table = np.asarray(structure_params(StructureLearning(num_nodes=d), data, reference="none").local_scores)
    for node in range(d):
        others = [i for i in range(d) if i != node]
        for size in range(d):
            for parents in itertools.combinations(others, size):
                mask = sum(1 << i for i in parents)
                assert np.isclose(table[node, mask], _reference_bge_local(data, node, parents), rtol=1e-5, atol=1e-3)
        assert np.isneginf(table[node, 1 << node])


def test_bge_of_one_variable_equals_the_normal_gamma_marginal_likelihood():
    # d = 1: alpha_w = 3, T = 0.5, so lambda ~ Gamma(1.5, rate 0.25), mu | lambda ~ N(0, 1 / lambda).
    # For x = (1, 2): kappa_N = 3, a_N = 2.5, b_N = 0.25 + 0.25 + 2 * 1.5**2 / 6 = 1.25.
    expected = (math.lgamma(2.5) - math.lgamma(1.5) + 1.5 * math.log(0.25) - 2.5 * math.log(1.25)
                + 0.5 * math.log(1 / 3) - math.log(2 * math.pi))
    params = structure_params(StructureLearning(num_nodes=1), np.array([[1.0], [2.0]]), reference="none")
    assert np.isclose(float(params.local_scores[0, 0]), expected, rtol=1e-6)
    relative = structure_params(StructureLearning(num_nodes=1), np.array([[1.0], [2.0]]), reference="empty")
    assert float(relative.local_scores[0, 0]) == 0.0  # relative to the empty graph


def _log_score(table, adjacency):
    d = len(adjacency)
    return sum(table[j, sum(1 << i for i in range(d) if adjacency[i, j])] for j in range(d))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_bge_is_score_equivalent_for_two_nodes(seed):
    data = np.random.default_rng(seed).normal(size=(20, 2)) @ np.array([[1.0, 3.0], [0.0, 1.0]])  # corr ~0.95
    table = np.asarray(structure_params(StructureLearning(num_nodes=2), data).local_scores, np.float64)
    forward, backward = table[0, 0] + table[1, 0b01], table[1, 0] + table[0, 0b10]  # 0 -> 1 and 1 -> 0
    assert np.isclose(forward, backward, rtol=1e-6)
    assert forward > table[0, 0] + table[1, 0] + 1.0  # the strong dependence favours an edge


@settings(max_examples=30, deadline=None)
@given(walk=walks)
def test_reversing_a_covered_edge_keeps_the_score(walk):
    d, seed, num_steps = walk
    env = structure_env(min(d, 5))
    adjacency = np.asarray(_random_walk(env, seed, num_steps)[-1].adjacency)
    data = np.random.default_rng(seed).normal(size=(30, env.num_nodes))
    params = structure_params(env, data)
    table = np.asarray(params.local_scores, np.float64)
    covered = [(i, j) for i, j in zip(*np.nonzero(adjacency))
               if (adjacency[:, j] == (adjacency[:, i] | (np.arange(env.num_nodes) == i))).all()]
    score = _log_score(table, adjacency)
    state = env.reset(params, jax.random.PRNGKey(0))._replace(adjacency=jnp.asarray(adjacency))
    assert np.isclose(float(env.log_reward(params, state)), score, rtol=1e-5)
    for i, j in covered:  # Markov equivalent graphs have equal BGe scores
        reversed_ = adjacency.copy()
        reversed_[i, j], reversed_[j, i] = False, True
        assert np.isclose(_log_score(table, reversed_), score, rtol=1e-5)


def test_ground_truth_is_a_seeded_dag_with_the_documented_edge_count():
    env = StructureLearning(num_nodes=10, graph_seed=3, edge_weights="signed_uniform", noise_std=1.0)
    adjacency, weights, data = generate_dataset(env)
    assert _is_acyclic(adjacency) and adjacency.sum() == round(0.4 * 45) == env.num_edges
    magnitudes = np.abs(weights[adjacency])
    assert ((magnitudes >= 0.5) & (magnitudes <= 2.0)).all() and not weights[~adjacency].any()
    assert data.shape == (100, 10)
    np.testing.assert_array_equal(ground_truth_adjacency(env), adjacency)
    same = StructureLearning(num_nodes=10, graph_seed=3, edge_weights="signed_uniform", noise_std=1.0)
    np.testing.assert_array_equal(generate_dataset(same)[2], data)
    assert not np.array_equal(ground_truth_adjacency(StructureLearning(num_nodes=10, graph_seed=4)), adjacency)


def test_exact_posterior_matches_the_target_distribution_and_concentrates_near_the_truth():
    # Weights away from zero and unit noise: data that identify the graph (the official unit weights with noise
    # 0.1 leave the BGe posterior spread over denser graphs, since its prior scale t = 0.5 dwarfs the noise).
    env = structure_env(4, num_samples=500, edge_weights="signed_uniform", noise_std=1.0)
    params = env.default_params()
    posterior = exact_posterior(env, params)
    assert np.isclose(posterior.sum(), 1.0)
    np.testing.assert_allclose(posterior, target_distribution(env, params), rtol=1e-3, atol=1e-6)  # float32 log R
    graphs = enumerated_graphs(env)
    truth = ground_truth_adjacency(env)
    assert expected_shd(posterior, graphs, truth) < 2.0
    assert edge_auc(edge_marginals(posterior, graphs), truth) > 0.8


@pytest.mark.parametrize("graph_seed", [0, 1])
def test_score_references_move_log_r_but_not_the_posterior(graph_seed):
    env = structure_env(4, num_samples=100, graph_seed=graph_seed)
    data = generate_dataset(env)[2]
    posteriors = {ref: exact_posterior(env, structure_params(env, data, reference=ref))
                  for ref in ("best", "empty", "none")}
    np.testing.assert_allclose(posteriors["best"], posteriors["empty"], rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(posteriors["best"], posteriors["none"], rtol=1e-4, atol=1e-9)
    table = np.asarray(structure_params(env, data).local_scores, np.float64)
    log_rewards = np.array([_log_score(table, graph) for graph in enumerated_graphs(env)])
    assert log_rewards.max() <= 0.0  # every DAG scores at most the per-node bests
    assert np.isclose(table.max(axis=1), 0.0).all()
    with pytest.raises(ConfigError, match="reference"):
        structure_params(env, data, reference="mean")


def test_transition_table_of_the_enumeration_is_consistent():
    env = structure_env(3)
    children, terminated, mask = transition_table(env)
    graphs = enumerated_graphs(env)
    for s, a in zip(*np.nonzero(mask)):
        if a == env.exit_action:
            assert terminated[s, a] and children[s, a] == s
        else:
            expected = graphs[s].copy()
            expected[a // 3, a % 3] = True
            np.testing.assert_array_equal(graphs[children[s, a]], expected)


def test_shd_counts_additions_removals_and_reversals_once():
    truth = np.zeros((3, 3), bool)
    truth[0, 1] = truth[1, 2] = True
    reversed_ = truth.copy()
    reversed_[0, 1], reversed_[1, 0] = False, True
    extra = truth.copy()
    extra[0, 2] = True
    assert list(structural_hamming_distances(np.stack([truth, reversed_, extra, np.zeros((3, 3), bool)]),
                                             truth)) == [0, 1, 1, 2]


def test_point_mass_on_the_truth_has_zero_shd_and_perfect_auc():
    env = structure_env(4, graph_seed=1)
    graphs = enumerated_graphs(env)
    truth = ground_truth_adjacency(env)
    p = np.zeros(env.num_states)
    p[int(env.state_index(env.reset(None, None)._replace(adjacency=jnp.asarray(truth))))] = 1.0
    assert expected_shd(p, graphs, truth) == 0.0
    marginals = edge_marginals(p, graphs)
    np.testing.assert_array_equal(marginals, truth.astype(float))
    assert edge_auc(marginals, truth) == 1.0
    assert edge_auc(1.0 - marginals, truth) == 0.0
    assert edge_auc(np.full((4, 4), 0.3), truth) == 0.5


@pytest.mark.parametrize("kwargs, field", [({"num_nodes": 0}, "num_nodes"), ({"num_nodes": 17}, "num_nodes"),
                                           ({"num_samples": 0}, "num_samples"), ({"graph_seed": -1}, "graph_seed"),
                                           ({"edge_density": 1.5}, "edge_density")])
def test_bad_sizes_are_rejected_with_the_field_name(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        StructureLearning(**kwargs)


def test_data_of_the_wrong_shape_is_rejected():
    with pytest.raises(ConfigError, match="data"):
        structure_params(StructureLearning(num_nodes=3), np.zeros((10, 4)))


@pytest.mark.parametrize("num_nodes", [1, 2])
def test_graph_metrics_of_a_graph_without_edges_are_finite_and_leave_out_edge_auc(num_nodes):
    env = structure_env(num_nodes)
    assert not ground_truth_adjacency(env).any()  # 0.4 * d (d - 1) / 2 rounds to no edge
    p = exact_posterior(env, env.default_params())
    results = graph_metrics(env, p)
    assert "edge_auc" not in results  # ROC-AUC needs a true edge and a non-edge to rank
    assert all(np.isfinite(value) for value in results.values())
    truth = ground_truth_adjacency(env)
    assert results["expected_shd"] == pytest.approx(expected_shd(p, enumerated_graphs(env), truth))


def test_graph_metrics_keep_edge_auc_when_the_truth_has_an_edge():
    env = structure_env(2, edge_density=1.0)  # one true edge, and its reverse as the one non-edge
    truth = ground_truth_adjacency(env)
    assert truth.sum() == 1
    p = np.zeros(env.num_states)
    p[int(env.state_index(env.reset(None, None)._replace(adjacency=jnp.asarray(truth))))] = 1.0
    assert graph_metrics(env, p) == {"expected_shd": 0.0, "edge_auc": 1.0}


def _regressions(env_of, seeds):
    """Least-squares coefficients of every node on its true parents, and the residuals, pooled over graphs."""
    coefficients, true_weights, residuals = [], [], []
    for seed in seeds:
        env = env_of(seed)
        adjacency, weights, data = generate_dataset(env)
        for node in range(env.num_nodes):
            parents = np.flatnonzero(adjacency[:, node])
            fitted = np.zeros(0)
            if parents.size:
                fitted = np.linalg.lstsq(data[:, parents], data[:, node], rcond=None)[0]
            residuals.append(data[:, node] - data[:, parents] @ fitted)
            coefficients.extend(fitted)
            true_weights.extend(weights[parents, node])
    return np.array(coefficients), np.array(true_weights), np.concatenate(residuals)


def test_official_data_have_unit_weights_and_noise_of_standard_deviation_0_1():
    # The official sampler sums parents unweighted with N(0, 0.1^2) noise; 100 graphs of 5 nodes, 2000 rows.
    coefficients, true_weights, residuals = _regressions(
        lambda seed: StructureLearning(num_nodes=5, num_samples=2000, graph_seed=seed), range(100))
    assert coefficients.size == 4 * 100 and np.all(true_weights == 1.0)
    # Coefficient standard error ~ 0.1 / (sqrt(2000) * parent spread >= 0.1) ~ 0.02: 0.15 is over 5 of them.
    assert np.abs(coefficients - 1.0).max() < 0.15
    assert abs(coefficients.mean() - 1.0) < 0.01
    # Residual moments of 100 * 5 * 2000 draws: mean 0 (s.e. 1e-4), std 0.1 (s.e. 1e-4), kurtosis 3 (s.e. 0.01).
    assert abs(residuals.mean()) < 1e-3 and abs(residuals.std() - 0.1) < 1e-3
    assert abs(np.mean(residuals**4) / residuals.var() ** 2 - 3.0) < 0.05


def test_normal_weights_are_standard_normal_in_distribution():
    # 400 graphs of 5 nodes (about 1,600 edges): the fitted coefficients match the drawn weights, and the
    # weights' mean, variance and kurtosis are N(0, 1)'s within 4 standard errors (1/40, 0.07, 0.25).
    coefficients, true_weights, residuals = _regressions(
        lambda seed: StructureLearning(num_nodes=5, num_samples=2000, graph_seed=seed, edge_weights="normal"),
        range(400))
    assert true_weights.size == 1600
    assert np.abs(coefficients - true_weights).max() < 0.15
    assert abs(true_weights.mean()) < 0.1 and abs(true_weights.var() - 1.0) < 0.28
    assert abs(np.mean(true_weights**4) / true_weights.var() ** 2 - 3.0) < 1.0
    assert abs(residuals.std() - 0.1) < 1e-3


def test_structure_config_builds_the_official_data_and_the_raw_score_on_request():
    from fluxrl.envs.gflownet.configs import StructureConfig

    env, params = StructureConfig(num_nodes=3, score_reference="none").build()
    assert (env.edge_weights, env.noise_std) == ("ones", 0.1)
    raw = bge_local_scores(generate_dataset(env)[2])
    np.testing.assert_allclose(np.asarray(params.local_scores), raw, rtol=1e-5)
    with pytest.raises(ConfigError, match="edge_weights"):
        StructureConfig(edge_weights="gamma")
    with pytest.raises(ConfigError, match="noise_std"):
        StructureConfig(noise_std=0.0)
