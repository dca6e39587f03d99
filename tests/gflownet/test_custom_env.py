"""A GFlowNet environment of one's own (examples/gc_content.py, none of fluxrl's) trains with TB and LGGFN from
Python and from the command line; an object that is no DAGEnv is refused naming what it lacks."""

import json

import jax
import pytest

from examples.gc_content import GCContent
from fluxrl.cli import main
from fluxrl.core.config import ConfigError
from fluxrl.envs.gflownet.configs import CustomEnvConfig, env_name
from fluxrl.gflownet.balance import ALGORITHM, BalanceConfig
from fluxrl.gflownet.lggfn import LGGFNConfig
from fluxrl.gflownet.networks import MLPConfig

ENV = CustomEnvConfig("examples.gc_content:make_env", (("length", 4), ("beta", 4.0)))


def train(config, iterations):
    data = ALGORITHM.make_data(config)
    state = ALGORITHM.init(config, data, jax.random.PRNGKey(0))
    step = jax.jit(lambda s: ALGORITHM.update(config, data, s))
    for _ in range(iterations):
        state, metrics = step(state)
    return metrics


@pytest.mark.parametrize("explore", [None, LGGFNConfig()], ids=["tb", "lggfn"])
@pytest.mark.slow
def test_tb_and_lggfn_learn_the_log_partition_of_a_users_environment(explore):
    config = BalanceConfig(env=ENV, network=MLPConfig(hidden=32), batch_size=32, explore=explore)
    metrics = train(config, 300)
    true_log_z = GCContent(4, 4.0).log_partition(4.0)
    assert abs(float(metrics["log_z"]) - true_log_z) < 0.15, (float(metrics["log_z"]), true_log_z)
    assert env_name(ENV) == "examples.gc_content:make_env"


def test_the_command_line_trains_an_environment_named_by_import_path(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "gflownet", "--loss", "tb", "--env", "examples.gc_content:make_env", "--env-arg",
                 "length=4", "--env-arg", "beta=4", "--iterations", "20", "--no-progress", "--out", str(out)]) == 0
    stored = json.loads((out / "config.json").read_text())
    assert stored["config"]["env"] == {"factory": "examples.gc_content:make_env", "args": [["length", 4], ["beta", 4]]}


@pytest.mark.parametrize("explore", ["none", "lggfn"])
@pytest.mark.slow
def test_tb_and_lggfn_learn_a_users_environment_from_the_command_line(explore, tmp_path):
    out = tmp_path / explore
    assert main(["train", "gflownet", "--loss", "tb", "--explore", explore, "--env", "examples.gc_content:make_env",
                 "--env-arg", "length=4", "--env-arg", "beta=4", "--hidden", "32", "--batch-size", "32",
                 "--iterations", "300", "--log-every", "50", "--no-progress", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert ("aux_loss" in summary) == (explore == "lggfn")  # the auxiliary GFlowNet trained beside the main one
    assert abs(summary["log_z"] - GCContent(4, 4.0).log_partition(4.0)) < 0.15


class NotADAG:
    num_actions = 2

    def reset(self, params, key):
        return None


def make_not_a_dag():
    return NotADAG()


def test_an_object_that_is_no_dag_env_is_refused_naming_what_it_lacks(capsys, tmp_path):
    with pytest.raises(ConfigError, match="lacks num_backward_actions, max_length"):
        CustomEnvConfig(f"{__name__}:make_not_a_dag")
    with pytest.raises(ConfigError, match="cannot import"):
        CustomEnvConfig("no_such_module:make_env")
    with pytest.raises(ConfigError, match="module:callable"):
        CustomEnvConfig("make_env")
    assert main(["train", "gflownet", "--env", "examples.gc_content:make_env", "--env-arg", "size=3",
                 "--out", str(tmp_path / "x")]) == 2
    assert "unexpected keyword argument 'size'" in capsys.readouterr().err
