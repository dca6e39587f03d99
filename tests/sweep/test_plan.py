"""A sweep's plan: traced values become one run's axis, static ones separate trials."""

import pytest

from fluxrl.core.config import ConfigError
from fluxrl.core.runner import RunConfig
from fluxrl.sweep.plan import Point, grid, parse_swept, plan
from fluxrl.sweep.traced import traced_paths
from tiny import TINY, TinyConfig


def _points(**swept):
    """The points of a grid over TinyConfig fields given as {name: values}."""
    options = [parse_swept(f"{name}={','.join(map(str, values))}") for name, values in swept.items()]
    return [Point(values, TINY, TinyConfig(**{k: type(getattr(TinyConfig(), k))(v) for k, v in values.items()}),
                  RunConfig(num_seeds=2)) for values in grid(options)]


def test_traced_values_form_one_axis_and_static_ones_separate_trials(tmp_path):
    trials = plan(_points(dim=[2, 3], lr=[0.1, 0.01], noise=[0.5, 0.0]), tmp_path)
    assert [t.name for t in trials] == ["dim=2", "dim=3"]
    first = trials[0]
    assert first.axis == {"lr": (0.1, 0.1, 0.01, 0.01), "noise": (0.5, 0.0, 0.5, 0.0)}
    assert first.points[1] == {"dim": "2", "lr": "0.1", "noise": "0.0"} and first.config.dim == 2
    assert first.members[1] == "lr=0.1,noise=0.0"
    assert first.run.out == str(tmp_path / "trials" / "dim=2") and first.run.num_seeds == 2


def test_a_numeric_field_the_config_does_not_declare_traced_makes_trials(tmp_path):
    trials = plan(_points(clip=[0.0, 1.0], lr=[0.1, 0.2]), tmp_path)
    assert [(t.name, t.axis) for t in trials] == [("clip=0.0", {"lr": (0.1, 0.2)}), ("clip=1.0", {"lr": (0.1, 0.2)})]


def test_a_trial_of_one_point_is_a_plain_run(tmp_path):
    (trial,) = plan(_points(lr=[0.1]), tmp_path)
    assert trial.axis is None and trial.members == () and trial.points == ({"lr": "0.1"},)


def test_values_that_give_the_same_run_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="lr=0.1 and lr=1e-1 describe the same run"):
        plan(_points(lr=["0.1", "1e-1"]), tmp_path)


@pytest.mark.parametrize("text", ["lr", "lr=", "=1,2", "lr=1,,2", "lr=1,1"])
def test_a_malformed_sweep_option_is_one_clear_error(text):
    with pytest.raises(ConfigError) as error:
        parse_swept(text)
    assert "\n" not in str(error.value)


def test_the_gflownet_configs_declare_their_traced_fields():
    from fluxrl.gflownet.balance import BalanceConfig
    from fluxrl.gflownet.lggfn import LGGFNConfig
    from fluxrl.gflownet.soft_dqn import SoftDQNConfig

    assert traced_paths(BalanceConfig(loss="tb", explore=LGGFNConfig())) == {
        "lr", "log_z_lr", "subtb_lambda", "epsilon", "temperature", "explore.lam"}
    assert "munchausen_alpha" not in traced_paths(SoftDQNConfig())
