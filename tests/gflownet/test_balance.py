"""GFlowNets trained with a balance loss learn the target with every loss; the batch mix is validated."""

import numpy as np
import pytest

from fluxrl.core.config import ConfigError
from fluxrl.envs.gflownet.configs import HypergridConfig
from fluxrl.gflownet import balance
from fluxrl.gflownet.balance import BalanceConfig
from fluxrl.gflownet.lggfn import LGGFNConfig
from fluxrl.gflownet.networks import MLPConfig
from fluxrl.gflownet.sagfn import SAGFNConfig
from fluxrl.gflownet.trajectory_replay import ReplayConfig
from gfn_helpers import seed, train, tv


def _tvs(config, iterations, num_seeds=1):
    data, states, metrics = train(balance.ALGORITHM, config, iterations, num_seeds)
    return np.array([tv(balance.ALGORITHM, config, data, seed(states, i)) for i in range(num_seeds)]), metrics


# DB with -m slow: SubTB with lambda weights covers the transition-level terms by default (the suite's five minutes).
@pytest.mark.parametrize("loss", ["tb", pytest.param("db", marks=pytest.mark.slow), "subtb"])
def test_every_loss_learns_a_small_hypergrid(loss):
    config = BalanceConfig(env=HypergridConfig(ndim=2, height=6, r0=0.1), network=MLPConfig(hidden=64),
                           loss=loss, batch_size=16)
    untrained, _ = _tvs(config, 1)
    trained, metrics = _tvs(config, 1500)
    assert trained[0] < 0.1 < untrained[0]
    assert np.all(np.isfinite(metrics["loss"]))


@pytest.mark.slow
def test_tb_on_hypergrid_4x8_reaches_tv_below_005_by_5000_iterations():
    config = BalanceConfig(env=HypergridConfig(ndim=4, height=8, r0=0.1, r1=0.5, r2=2.0), loss="tb")
    tvs, _ = _tvs(config, 5000, num_seeds=4)
    assert tvs.mean() <= 0.05, tvs


def test_auxiliary_fraction_that_leaves_no_fresh_trajectory_is_refused():
    # round(0.97 * 16) = 16: every trajectory would be auxiliary, and TB would train log Z alone.
    with pytest.raises(ConfigError, match="aux_fraction"):
        BalanceConfig(batch_size=16, explore=LGGFNConfig(aux_fraction=0.97))
    with pytest.raises(ConfigError, match="aux_fraction"):
        BalanceConfig(batch_size=4, explore=ReplayConfig(aux_fraction=0.9))
    BalanceConfig(batch_size=16, explore=LGGFNConfig(aux_fraction=0.9))  # 14 auxiliary, 2 fresh: fine


def test_auxiliary_fraction_that_leaves_no_auxiliary_trajectory_is_refused():
    with pytest.raises(ConfigError, match="aux_fraction"):
        BalanceConfig(batch_size=4, explore=LGGFNConfig(aux_fraction=0.01))


def test_replay_capacity_below_the_batch_size_is_refused():
    with pytest.raises(ConfigError, match="capacity"):
        BalanceConfig(batch_size=16, explore=ReplayConfig(capacity=8))
    BalanceConfig(batch_size=16, explore=ReplayConfig(capacity=16))


def test_a_transformer_policy_is_refused_outside_bit_sequences():
    from fluxrl.gflownet.networks import TransformerConfig

    with pytest.raises(ConfigError, match="network"):
        BalanceConfig(network=TransformerConfig())


def test_trajectories_per_iteration_counts_main_and_auxiliary_samples():
    work = balance.ALGORITHM.work_per_iteration
    assert work(BalanceConfig(batch_size=16)) == 16
    assert work(BalanceConfig(batch_size=16, explore=ReplayConfig(aux_fraction=0.25))) == 12
    assert work(BalanceConfig(batch_size=16, explore=SAGFNConfig(aux_fraction=0.5))) == 8 + 16
