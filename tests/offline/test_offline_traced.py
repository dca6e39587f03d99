"""Every field an offline config declares traced can be traced, and a TD3+BC axis trains each value as its own
run would."""

import dataclasses
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fluxrl.core import runner
from fluxrl.core.hyper import get_path, with_values
from fluxrl.offline.common import make_offline_data
from fluxrl.sweep.traced import traced_paths
from offline_toy import pendulum_shaped


@pytest.fixture(scope="module")
def data():
    """64 random Pendulum-shaped transitions, no evaluation environment."""
    dataset = pendulum_shaped()
    return jax.tree.map(jnp.asarray, make_offline_data(dataset, max_action=2.0))  # on the device, as a run has it


def small(name):
    """The algorithm and a small config of offline algorithm `name`."""
    module = importlib.import_module(f"fluxrl.offline.{name}")
    config_type = module.ALGORITHM.config_type
    return module.ALGORITHM, config_type(hidden=16, batch_size=8, **({"flow_epochs": 1} if name == "cnf" else {}))


# CNF with -m slow: its flow is pre-trained first (the same latent AWAC update as AWAC's otherwise).
@pytest.mark.parametrize("name", ["bc", "td3bc", "iql", "awac", pytest.param("cnf", marks=pytest.mark.slow)])
def test_every_declared_traced_field_traces(name, data, tmp_path):
    algorithm, config = small(name)
    if algorithm.prepare_data is not None:
        data = algorithm.prepare_data(config, data, "toy", tmp_path / "models")
    paths = sorted(traced_paths(config))
    assert paths, f"{name} declares no traced field"
    values = {path: jnp.float32(get_path(config, path)) for path in paths}

    def one_iteration(values):
        traced = with_values(config, values)
        return algorithm.update(traced, data, algorithm.init(traced, data, jax.random.PRNGKey(0)))

    jax.eval_shape(one_iteration, values)  # raises if a traced field meets Python control flow


@pytest.mark.slow  # the runner's axis is checked member by member by default in tests/sweep/test_axis.py
def test_each_alpha_of_a_td3bc_axis_trains_as_its_run_alone(data, tmp_path):
    algorithm, config = small("td3bc")
    run_config = runner.RunConfig(iterations=6, num_seeds=2, out=str(tmp_path / "axis"), log_every=3, eval_every=6,
                                  checkpoint_every=6, progress=False)
    swept = runner.run(algorithm, config, run_config, data=data, axis={"alpha": (1.0, 2.5)})
    alone = runner.run(algorithm, dataclasses.replace(config, alpha=1.0),
                       dataclasses.replace(run_config, out=str(tmp_path / "alone")), data=data)
    for seed in range(2):
        for a, b in zip(jax.tree.leaves(runner.member_state(swept.state, 0, seed)),
                        jax.tree.leaves(runner.seed_state(alone.state, seed))):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert swept.summary["members"]["alpha=1.0"]["per_seed"]["actor_loss"] != \
        swept.summary["members"]["alpha=2.5"]["per_seed"]["actor_loss"]
