"""Small GFlowNet configs for tests: an algorithm by its command-line name, on a tiny grid by default."""

from fluxrl.envs.gflownet.configs import HypergridConfig
from fluxrl.gflownet import balance, soft_dqn
from fluxrl.gflownet.networks import MLPConfig


def tiny(name: str = "tb", env=None, hidden: int = 16, **fields):
    """(algorithm, config) of tb / db / subtb / sdqn / mdqn on `env` (a 5x5 hypergrid) with a small MLP."""
    fields = {"env": env or HypergridConfig(ndim=2, height=5), "network": MLPConfig(hidden=hidden), "batch_size": 8,
              **fields}
    if name in ("sdqn", "mdqn"):
        alpha = {"munchausen_alpha": 0.0} if name == "sdqn" else {}
        return soft_dqn.ALGORITHM, soft_dqn.SoftDQNConfig(**alpha, **fields)
    return balance.ALGORITHM, balance.BalanceConfig(loss=name, **fields)
