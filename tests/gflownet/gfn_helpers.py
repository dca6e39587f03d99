"""Training and evaluating a GFlowNet algorithm directly (jit of vmap over seeds of a scan), without the runner."""

import jax
import numpy as np


def init_one(algorithm, config, seed=0):
    """(data, state) of one seed."""
    data = algorithm.make_data(config)
    return data, jax.jit(lambda key, d: algorithm.init(config, d, key))(jax.random.PRNGKey(seed), data)


def run_iterations(algorithm, config, data, state, iterations):
    """(state, metrics [iterations]) of one seed after `iterations` updates."""
    scan = lambda s, d: jax.lax.scan(lambda c, _: algorithm.update(config, d, c), s, None, length=iterations)
    return jax.jit(scan)(state, data)


def train(algorithm, config, iterations, num_seeds=1):
    """(data, states [seeds], metrics [seeds, iterations]) of several seeds trained together."""
    data = algorithm.make_data(config)
    keys = jax.vmap(jax.random.PRNGKey)(np.arange(num_seeds))
    states = jax.jit(jax.vmap(lambda key, d: algorithm.init(config, d, key), (0, None)))(keys, data)
    scan = lambda s, d: jax.lax.scan(lambda c, _: algorithm.update(config, d, c), s, None, length=iterations)
    states, metrics = jax.jit(jax.vmap(scan, (0, None)))(states, data)
    return data, states, metrics


def seed(states, index):
    """The state of one seed."""
    return jax.tree.map(lambda x: x[index], states)


def tv(algorithm, config, data, state):
    """Exact TV of one seed's forward policy to the target."""
    return float(algorithm.evaluate(config, data, state, jax.random.PRNGKey(1))["tv"])
