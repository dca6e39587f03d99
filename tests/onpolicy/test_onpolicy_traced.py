"""Every field PPO's and FPO's configs declare traced can be traced: init and update accept a tracer there."""

import jax
import jax.numpy as jnp
import pytest

from fluxrl.commands.train_onpolicy import algorithm_for
from fluxrl.core.hyper import get_path, with_values
from fluxrl.onpolicy.tuned import tuned_config
from fluxrl.sweep.traced import traced_paths


@pytest.mark.parametrize("name", ["ppo", "fpo"])
def test_every_declared_traced_field_traces(name):
    config = tuned_config(name, "pendulum", num_envs=4, num_steps=8, epochs=1, minibatches=2, actor_hidden=(8,),
                          critic_hidden=(8,))
    algorithm = algorithm_for(config)
    data = algorithm.make_data(config) if algorithm.make_data else None
    paths = sorted(traced_paths(config))
    assert {"lr", "clip_eps", "gamma"} <= set(paths)
    values = {path: jnp.float32(get_path(config, path)) for path in paths}

    def one_iteration(values):
        traced = with_values(config, values)
        return algorithm.update(traced, data, algorithm.init(traced, data, jax.random.PRNGKey(0)))

    jax.eval_shape(one_iteration, values)  # raises if a traced field meets Python control flow
