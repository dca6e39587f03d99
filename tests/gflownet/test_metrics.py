"""Metric definitions, and the exact DP distribution against fresh samples."""

import jax
import numpy as np
from scipy.stats import chisquare

from fluxrl.envs.gflownet.bitseq import BitSequence, bitseq_params
from fluxrl.envs.gflownet.hypergrid import Hypergrid, hypergrid_params
from fluxrl.gflownet import metrics
from fluxrl.gflownet.policy import MLPPolicy, SlotTransformerPolicy
from fluxrl.gflownet.sampler import sample_trajectories


def test_distances_match_hand_computed_values():
    p, target = np.array([0.5, 0.25, 0.25]), np.array([0.25, 0.25, 0.5])
    assert np.isclose(metrics.tv(p, target), 0.25)
    assert np.isclose(metrics.l1_sum(p, target), 0.5)
    assert np.isclose(metrics.kl(p, target), 0.25 * np.log(2))
    assert np.isclose(metrics.jsd(p, target), 0.5 * np.log(0.5 / 0.375) - 0.25 * np.log(1.5), atol=1e-12)
    assert metrics.tv(target, target) == 0 and metrics.jsd(target, target) == 0


def _chi_square_against_exact(policy, env, env_params, num_samples=100_000):
    """p-value of a chi-square test of 100k sampled terminal objects against the exact DP distribution."""
    exact = metrics.exact_terminal_distribution(policy, env, env_params)
    trajectories, _ = jax.jit(lambda key: sample_trajectories(
        policy, env, env_params, key, num_samples, False))(jax.random.PRNGKey(5))
    index = np.asarray(jax.vmap(env.state_index)(trajectories.final_states))
    counts = np.bincount(index, minlength=env.num_states)
    support = exact > 0
    assert counts[~support].sum() == 0
    return chisquare(counts[support], exact[support] / exact[support].sum() * num_samples).pvalue


def test_exact_distribution_agrees_with_100k_fresh_samples_on_a_hypergrid():
    env, env_params = Hypergrid(ndim=2, height=5), hypergrid_params("standard")
    policy = MLPPolicy(env, width=16, depth=2, key=jax.random.PRNGKey(11))
    assert _chi_square_against_exact(policy, env, env_params) > 1e-3


def test_exact_distribution_agrees_with_100k_fresh_samples_on_small_bit_sequences():
    env = BitSequence(n=6, k=2, num_modes=2)
    env_params = bitseq_params(env, beta=1.0, modes=np.array([[0, 0, 1, 1, 0, 1], [1, 1, 1, 0, 0, 0]]))
    policy = SlotTransformerPolicy(env, d_model=16, num_heads=2, num_layers=1, key=jax.random.PRNGKey(11))
    assert _chi_square_against_exact(policy, env, env_params) > 1e-3
