"""Metric definitions, and the exact DP distribution against fresh samples."""

import jax
import numpy as np
from scipy.stats import chisquare

from fluxrl.gflownet import metrics, trainer
from fluxrl.gflownet.sampler import sample_trajectories


def test_distances_match_hand_computed_values():
    p, target = np.array([0.5, 0.25, 0.25]), np.array([0.25, 0.25, 0.5])
    assert np.isclose(metrics.tv(p, target), 0.25)
    assert np.isclose(metrics.l1_sum(p, target), 0.5)
    assert np.isclose(metrics.kl(p, target), 0.25 * np.log(2))
    assert np.isclose(metrics.jsd(p, target), 0.5 * np.log(0.5 / 0.375) - 0.25 * np.log(1.5), atol=1e-12)
    assert metrics.tv(target, target) == 0 and metrics.jsd(target, target) == 0


def _chi_square_against_exact(config, num_samples=100_000):
    state = trainer.init(config, jax.random.PRNGKey(11))
    env, _ = trainer._static(config)
    policy = trainer.policy_of(config, state)
    exact = metrics.exact_terminal_distribution(policy, env, state.env_params)
    trajectories, _ = jax.jit(lambda key: sample_trajectories(
        policy, env, state.env_params, key, num_samples, False))(jax.random.PRNGKey(5))
    index = np.asarray(jax.vmap(env.state_index)(trajectories.final_states))
    counts = np.bincount(index, minlength=env.num_states)
    support = exact > 0
    assert counts[~support].sum() == 0
    return chisquare(counts[support], exact[support] / exact[support].sum() * num_samples).pvalue


def test_exact_distribution_agrees_with_100k_fresh_samples_on_a_hypergrid():
    config = trainer.GFlowNetConfig(ndim=2, height=5, hidden=16)
    assert _chi_square_against_exact(config) > 1e-3
