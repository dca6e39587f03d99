"""The empirical L1 of Tiapkin et al. 2024: a hand-computed case, the ring buffer, and training fills it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fluxrl.core.config import ConfigError
from fluxrl.envs.gflownet.configs import HypergridConfig, ParenthesesConfig
from fluxrl.gflownet import balance, empirical, soft_dqn
from fluxrl.gflownet.evaluation import make_run_data
from fluxrl.gflownet.networks import MLPConfig
from gfn_helpers import init_one, run_iterations


def test_empirical_l1_of_a_known_window_on_a_3x3_grid_is_the_hand_computed_number():
    # 3x3 standard grid: the four corners have R = r0 + r1 = 0.501, the other five cells R = r0 = 0.001, so
    # Z = 2.009. Window of 4 after the batches [0, 4] and [8, 0, 2]: it keeps [4, 8, 0, 2], p_hat = 1/4 on cells
    # 0, 2, 4, 8 (corners 0, 2, 8; centre 4). Sum of |p_hat - p*| over the 9 cells:
    # 3 (1/4 - a) + a (corner 6) + (1/4 - b) (centre) + 4 b = 1 - 2a + 3b, a = 0.501 / Z, b = 0.001 / Z.
    data = make_run_data(HypergridConfig(ndim=2, height=3))
    window = empirical.window_init(4)
    window = empirical.window_add(window, jnp.array([0, 4]))
    window = empirical.window_add(window, jnp.array([8, 0, 2]))
    assert int(window.count) == 4 and sorted(np.asarray(window.indices).tolist()) == [0, 2, 4, 8]
    a, b = 0.501 / 2.009, 0.001 / 2.009
    expected = (1 - 2 * a + 3 * b) / 9
    env = HypergridConfig(ndim=2, height=3).build()[0]
    value = empirical.empirical_metrics(env, window, data.exact)
    assert float(value["empirical_l1"]) == pytest.approx(expected, rel=1e-5)
    # The origin's orthant (every coordinate below H / 2 = 1.5) is cells 0, 1, 3, 4: 2 samples in 4.
    assert float(value["origin_block_log_mass"]) == pytest.approx(np.log(0.5), rel=1e-6)


def test_a_window_not_yet_full_uses_every_sample_so_far_and_an_empty_one_gives_mean_target():
    data = make_run_data(HypergridConfig(ndim=2, height=3))
    target = np.asarray(data.exact.target)
    p_hat = np.asarray(empirical.empirical_distribution(
        empirical.window_add(empirical.window_init(10), jnp.array([1, 1, 5])), 9))
    np.testing.assert_allclose(p_hat, np.bincount([1, 1, 5], minlength=9) / 3, rtol=1e-6)
    empty = empirical.empirical_distribution(empirical.window_init(10), 9)
    is_object = empirical.terminal_objects(data.exact)
    assert bool(jnp.all(is_object))
    assert float(empirical.empirical_l1(empty, data.exact.target, is_object)) == pytest.approx(target.mean(), rel=1e-5)


def test_a_batch_larger_than_the_window_keeps_its_last_samples():
    window = empirical.window_add(empirical.window_init(3), jnp.arange(7))
    assert sorted(np.asarray(window.indices).tolist()) == [4, 5, 6] and int(window.count) == 3
    # The next sample replaces the oldest kept one (4).
    window = empirical.window_add(window, jnp.array([9]))
    assert sorted(np.asarray(window.indices).tolist()) == [5, 6, 9]


@pytest.mark.parametrize("algorithm, config", [
    (balance.ALGORITHM, balance.BalanceConfig(env=HypergridConfig(ndim=2, height=4), network=MLPConfig(hidden=16),
                                              batch_size=4, empirical_window=10)),
    (soft_dqn.ALGORITHM, soft_dqn.SoftDQNConfig(env=HypergridConfig(ndim=2, height=4), network=MLPConfig(hidden=16),
                                                batch_size=4, replay_batch_size=8, per_capacity=64,
                                                empirical_window=10)),
])
def test_training_fills_the_window_with_the_sampled_objects_and_evaluation_reports_it(algorithm, config):
    data, state = init_one(algorithm, config)
    state, _ = run_iterations(algorithm, config, data, state, 2)
    assert int(state.sampled.count) == 8  # 2 iterations x 4 trajectories, window not yet full
    state, metrics = run_iterations(algorithm, config, data, state, 1)
    assert int(state.sampled.count) == 10
    # The metrics of the update that just ran count its samples' mean reward; their cells are in the window.
    metrics = algorithm.evaluate(config, data, state, jax.random.PRNGKey(0))
    assert 0.0 < float(metrics["empirical_l1"]) < 2.0 / 16


def test_empirical_window_is_refused_where_no_exact_target_exists():
    with pytest.raises(ConfigError, match="empirical_window"):
        balance.BalanceConfig(env=ParenthesesConfig(), empirical_window=100)
    with pytest.raises(ConfigError, match="empirical_window"):
        soft_dqn.SoftDQNConfig(empirical_window=-1)
