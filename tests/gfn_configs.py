"""Small GFlowNet configs for tests: an algorithm by its command-line name, on a tiny grid by default."""

from fluxrl.envs.gflownet.configs import HypergridConfig
from fluxrl.gflownet.algorithms import configure
from fluxrl.gflownet.networks import MLPConfig


def tiny(name: str = "tb", env=None, hidden: int = 16, **fields):
    """(algorithm, config) of tb / db / subtb / sdqn / mdqn on `env` (a 5x5 hypergrid) with a small MLP."""
    fields = {"env": env or HypergridConfig(ndim=2, height=5), "network": MLPConfig(hidden=hidden), "batch_size": 8,
              **fields}
    return configure(name, **fields)
