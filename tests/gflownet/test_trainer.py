"""GFlowNet training learns the target, with every loss."""

import jax
import numpy as np
import pytest

from fluxrl.gflownet import trainer


def _train(config, iterations, num_seeds=1):
    keys = jax.vmap(jax.random.PRNGKey)(np.arange(num_seeds))
    state = jax.jit(jax.vmap(lambda k: trainer.init(config, k)))(keys)
    run = jax.jit(jax.vmap(lambda s: jax.lax.scan(lambda c, _: trainer.update(config, c), s, None,
                                                  length=iterations)))
    state, metrics = run(state)
    tvs = [trainer.evaluate(config, jax.tree.map(lambda x: x[i], state), jax.random.PRNGKey(0))["tv"]
           for i in range(num_seeds)]
    return np.array(tvs), metrics


@pytest.mark.parametrize("loss", ["tb", "db", "subtb"])
def test_every_loss_learns_a_small_hypergrid(loss):
    config = trainer.GFlowNetConfig(ndim=2, height=6, r0=0.1, loss=loss, hidden=64, batch_size=16)
    untrained, _ = _train(config, 1)
    trained, metrics = _train(config, 1500)
    assert trained[0] < 0.1 < untrained[0]
    assert np.all(np.isfinite(metrics["loss"]))


@pytest.mark.slow
def test_tb_on_hypergrid_4x8_reaches_tv_below_005_by_5000_iterations():
    config = trainer.GFlowNetConfig(ndim=4, height=8, r0=0.1, r1=0.5, r2=2.0, loss="tb")
    tvs, _ = _train(config, 5000, num_seeds=4)
    assert tvs.mean() <= 0.05, tvs
