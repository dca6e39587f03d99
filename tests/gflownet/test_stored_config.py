"""A GFlowNet config written to a run's config.json reads back equal, whichever union members it holds."""

import json

import pytest

from fluxrl.core.config import to_dict
from fluxrl.envs.gflownet.configs import BitSequenceConfig
from fluxrl.gflownet import balance, soft_dqn
from fluxrl.gflownet.algorithms import ALGORITHMS, config_from_dict
from fluxrl.gflownet.lggfn import LGGFNConfig
from fluxrl.gflownet.networks import TransformerConfig
from fluxrl.gflownet.trajectory_replay import ReplayConfig


@pytest.mark.parametrize("algorithm, config", [
    (balance.ALGORITHM, balance.BalanceConfig(explore=LGGFNConfig(lam=0.25))),
    (soft_dqn.ALGORITHM, soft_dqn.SoftDQNConfig(l0=-3.0)),
    (balance.ALGORITHM, balance.BalanceConfig(env=BitSequenceConfig(n=16, k=4, num_modes=3),
                                              network=TransformerConfig(d_model=16, heads=2, layers=1),
                                              explore=ReplayConfig())),
], ids=["lggfn", "mdqn", "bitseq-replay"])
def test_a_config_read_back_from_its_json_equals_the_original(algorithm, config):
    stored = json.loads(json.dumps({"algorithm": algorithm.name, "config": to_dict(config)}))
    assert config_from_dict(ALGORITHMS[stored["algorithm"]].config_type, stored["config"]) == config
