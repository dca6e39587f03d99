"""The packed gradient pass must equal plain autodiff of the loss on re-scored trajectories."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fluxrl.envs.gflownet.configs import HypergridConfig
from fluxrl.gflownet import balance
from fluxrl.gflownet.balance import BalanceConfig
from fluxrl.gflownet.gradients import policy_gradient
from fluxrl.gflownet.losses import balance_loss
from fluxrl.gflownet.networks import MLPConfig, policy_static
from fluxrl.gflownet.sampler import sample_trajectories, score_trajectories


def _gradients(config, chunk_rows):
    env, env_params = config.env.build()
    static = policy_static(config.network, env)
    state = balance.init(config, balance.make_data(config), jax.random.PRNGKey(3))
    uniform_pb = config.backward_policy == "uniform"
    policy = eqx.combine(state.model.policy, static)
    trajectories, terms = sample_trajectories(policy, env, env_params, jax.random.PRNGKey(4),
                                              config.batch_size, uniform_pb, 0.1, 1.0)
    log_z = jnp.float32(0.7)

    def loss_of_terms(terms):
        return jnp.mean(balance_loss(config.loss, terms, trajectories.log_reward, trajectories.length, log_z,
                                     config.subtb_lambda))

    cotangents = jax.grad(loss_of_terms)(terms)
    packed = policy_gradient(state.model.policy, static, env, trajectories, cotangents, uniform_pb, chunk_rows)
    direct = jax.grad(lambda p: loss_of_terms(score_trajectories(eqx.combine(p, static), env, trajectories,
                                                                 uniform_pb)))(state.model.policy)
    return packed, direct, terms, score_trajectories(policy, env, trajectories, uniform_pb), trajectories


@pytest.mark.parametrize("loss", ["tb", "db", "subtb"])
# The uniform backward policy (no P_B parameters) is the simpler case: with -m slow.
@pytest.mark.parametrize("backward_policy", ["learned", pytest.param("uniform", marks=pytest.mark.slow)])
def test_packed_gradient_equals_autodiff_of_rescored_loss(loss, backward_policy):
    config = BalanceConfig(env=HypergridConfig(ndim=3, height=5), network=MLPConfig(hidden=32), loss=loss,
                           backward_policy=backward_policy, batch_size=8)
    packed, direct, _, _, _ = _gradients(config, chunk_rows=16)
    for a, b in zip(jax.tree.leaves(packed), jax.tree.leaves(direct)):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6)


def test_sampler_terms_equal_terms_rescored_by_the_same_policy():
    config = BalanceConfig(env=HypergridConfig(ndim=2, height=6), network=MLPConfig(hidden=32), loss="subtb",
                           batch_size=8)
    _, _, sampled, rescored, trajectories = _gradients(config, chunk_rows=64)
    visited = np.arange(sampled.log_pf.shape[1])[None, :] <= np.asarray(trajectories.length)[:, None]
    for a, b in zip(sampled, rescored):
        np.testing.assert_allclose(np.where(visited, a, 0), np.where(visited, b, 0), rtol=1e-5, atol=1e-5)
