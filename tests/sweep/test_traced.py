"""Every field a GFlowNet config declares traced can be traced: init and update accept a tracer there."""

import jax
import jax.numpy as jnp
import pytest

from fluxrl.core.hyper import get_path, with_values
from fluxrl.gflownet.lggfn import LGGFNConfig
from fluxrl.gflownet.sagfn import SAGFNConfig
from fluxrl.gflownet.teacher import TeacherConfig
from fluxrl.sweep.traced import traced_paths
from gfn_configs import tiny


# SubTB (the balance config's fields) and M-DQN by default; the exploration strategies' fields with -m slow.
@pytest.mark.parametrize("name, options", [
    ("subtb", {}),
    pytest.param("tb", dict(explore=LGGFNConfig()), marks=pytest.mark.slow),
    pytest.param("tb", dict(explore=TeacherConfig()), marks=pytest.mark.slow),
    pytest.param("tb", dict(explore=SAGFNConfig()), marks=pytest.mark.slow),
    ("mdqn", dict(per_capacity=64, replay_batch_size=16)),
], ids=["subtb", "lggfn", "teacher", "sagfn", "mdqn"])
def test_every_declared_traced_field_traces(name, options):
    algorithm, config = tiny(name, **options)
    data = algorithm.make_data(config)
    paths = sorted(traced_paths(config))
    values = {path: jnp.float32(get_path(config, path)) for path in paths}

    def one_iteration(values):
        traced = with_values(config, values)
        return algorithm.update(traced, data, algorithm.init(traced, data, jax.random.PRNGKey(0)))

    jax.eval_shape(one_iteration, values)  # raises if a traced field meets Python control flow


def test_a_field_used_in_python_control_flow_fails_to_trace():
    algorithm, config = tiny("tb")
    data = algorithm.make_data(config)
    traced = lambda decay: algorithm.init(with_values(config, {"weight_decay": decay}), data, jax.random.PRNGKey(0))
    with pytest.raises(jax.errors.ConcretizationTypeError):  # model.optimizer: `if weight_decay == 0.0`
        jax.eval_shape(traced, jnp.float32(0.0))
