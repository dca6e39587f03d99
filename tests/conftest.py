"""Shared fixtures: tiny configs that compile fast."""

import pytest

from fluxrl.core.runner import RunConfig
from fluxrl.envs.gflownet.configs import HypergridConfig
from fluxrl.gflownet.balance import BalanceConfig
from fluxrl.gflownet.networks import MLPConfig


@pytest.fixture
def tiny_config():
    """A TB GFlowNet (`fluxrl.gflownet.balance.ALGORITHM`) on a 2x5 hypergrid with a small MLP."""
    return BalanceConfig(env=HypergridConfig(ndim=2, height=5), network=MLPConfig(hidden=16), batch_size=8)


@pytest.fixture
def tiny_run(tmp_path):
    """A short run of 40 iterations with rows every 10 and checkpoints every 20."""
    return RunConfig(iterations=40, num_seeds=2, out=str(tmp_path / "run"), log_every=10, eval_every=20,
                     checkpoint_every=20, progress=False)


def pytest_configure(config):
    """Share compiled programs between tests: many tests compile the same tiny configs."""
    import tempfile

    import jax

    jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="fluxrl-test-jax-cache-"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
