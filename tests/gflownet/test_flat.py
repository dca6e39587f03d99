"""The flat option names of earlier versions build the right algorithm and nested config, or a clear refusal."""

import json

import pytest

from fluxrl.core.config import ConfigError, to_dict
from fluxrl.envs.gflownet.configs import BitSequenceConfig, HypergridConfig
from fluxrl.gflownet import balance, soft_dqn
from fluxrl.gflownet.algorithms import ALGORITHMS, config_from_dict
from fluxrl.gflownet.flat import from_flat
from fluxrl.gflownet.lggfn import LGGFNConfig
from fluxrl.gflownet.networks import MLPConfig, TransformerConfig
from fluxrl.gflownet.teacher import TeacherConfig


def test_defaults_are_tb_on_an_8x8_hypergrid_with_an_mlp():
    algorithm, config = from_flat()
    assert algorithm is balance.ALGORITHM
    assert config == balance.BalanceConfig(env=HypergridConfig(), network=MLPConfig())


def test_flat_options_land_in_their_nested_configs():
    algorithm, config = from_flat(env="bitseq", n=16, k=4, num_modes=3, d_model=16, heads=2, transformer_layers=1,
                                  loss="subtb", subtb_lambda=1.9, explore="teacher", aux_lambda=0.3)
    assert algorithm is balance.ALGORITHM
    assert config.env == BitSequenceConfig(n=16, k=4, num_modes=3)
    assert config.network == TransformerConfig(d_model=16, heads=2, layers=1)
    assert config.subtb_lambda == 1.9 and config.explore == TeacherConfig(loss_exponent=0.3)


@pytest.mark.parametrize("loss, alpha", [("sdqn", 0.0), ("mdqn", 0.15)])
def test_soft_rl_losses_are_one_algorithm_told_apart_by_the_munchausen_weight(loss, alpha):
    algorithm, config = from_flat(loss=loss, backward_policy="uniform", leaf_coefficient=3.0)
    assert algorithm is soft_dqn.ALGORITHM
    assert config.munchausen_alpha == alpha and config.leaf_coefficient == 3.0


@pytest.mark.parametrize("options, name", [
    (dict(env="hypergrid", n=64), "n"),
    (dict(env="bitseq", height=4), "height"),
    (dict(env="bitseq", hidden=32), "hidden"),
    (dict(loss="tb", subtb_lambda=1.5), "subtb_lambda"),
    (dict(loss="db", log_z_lr=0.5), "log_z_lr"),
    (dict(loss="tb", leaf_coefficient=2.0), "leaf_coefficient"),
    (dict(loss="sdqn", munchausen_alpha=0.3), "munchausen_alpha"),
    (dict(loss="mdqn", grad_chunk_rows=64), "grad_chunk_rows"),
    (dict(loss="mdqn", backward_policy="learned", log_z_lr=0.2), "log_z_lr"),
    (dict(explore="none", aux_fraction=0.25), "aux_fraction"),
    (dict(explore="lggfn", replay_capacity=64), "replay_capacity"),
    (dict(explore="replay", aux_lambda=0.5), "aux_lambda"),
    (dict(explore="teacher", rnd_lr=0.1), "rnd_lr"),
    (dict(loss="mdqn", explore="lggfn"), "explore"),
    (dict(colour="blue"), "colour"),
])
def test_an_option_that_does_not_apply_is_refused_by_name(options, name):
    with pytest.raises(ConfigError, match=name):
        from_flat(**options)


def test_errors_speak_of_the_flat_name_typed():
    with pytest.raises(ConfigError, match="^aux_lambda must be > 0"):
        from_flat(explore="lggfn", aux_lambda=0.0)
    with pytest.raises(ConfigError, match="^munchausen_l0 must be < 0"):
        from_flat(loss="mdqn", munchausen_l0=1.0)


@pytest.mark.parametrize("options", [dict(explore="lggfn", aux_lambda=0.25), dict(loss="mdqn", munchausen_l0=-3.0),
                                     dict(env="bitseq", n=16, k=4, num_modes=3, explore="replay")])
def test_a_config_read_back_from_its_json_equals_the_original(options):
    algorithm, config = from_flat(**options)
    stored = json.loads(json.dumps({"algorithm": algorithm.name, "config": to_dict(config)}))
    assert config_from_dict(ALGORITHMS[stored["algorithm"]].config_type, stored["config"]) == config


def test_lggfn_and_teacher_weights_have_their_own_names():
    assert from_flat(explore="lggfn", aux_lambda=0.1)[1].explore == LGGFNConfig(lam=0.1)
