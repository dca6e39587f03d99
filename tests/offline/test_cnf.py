"""CNF: latent AWAC through a frozen flow learns on the bandit whose best action is known; its actions stay in the
support of the data; the VAE decoder (the ablation) trains too."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fluxrl.core.config import ConfigError
from fluxrl.offline import cnf, vae
from fluxrl.offline.common import make_offline_data
from fluxrl.offline.flow_training import pretrain_flow
from fluxrl.offline.flows import PRESETS
from fluxrl.offline.latent import make_latent_data
from tests.offline.test_algorithms import BEHAVIOUR_DISTANCE, GRID, bandit_dataset, best_action

TINY_FLOW = dataclasses.replace(PRESETS["cpu"], blocks=2, hidden=32, batch_size=256, epochs=15)
CONFIG = cnf.CNFConfig(hidden=32, depth=2, batch_size=256)


@pytest.fixture(scope="module")
def latent_bandit():
    offline = make_offline_data(bandit_dataset())
    flow, _ = pretrain_flow(TINY_FLOW, offline.observations, offline.actions, offline.max_action,
                            jax.random.PRNGKey(0))
    return make_latent_data(offline, flow)


def train(config, data, updates, seed=0):
    state = cnf.init(config, data, jax.random.PRNGKey(seed))
    scan = jax.jit(lambda s, d: jax.lax.scan(lambda c, _: cnf.update(config, d, c), s, None, length=updates))
    state, metrics = scan(state, data)
    assert all(np.isfinite(np.asarray(v)).all() for v in metrics.values())
    return state, metrics


def median_action(config, state, data):
    """The decoded latent at the actor's mean (tanh(mu)): the policy's central action on the state grid."""
    normalised = jnp.asarray((GRID - np.asarray(data.obs_mean)) / np.asarray(data.obs_std))
    mean, _ = jnp.split(state.actor(normalised), 2, axis=-1)
    return np.asarray(data.decoder.decode(cnf.latent_scale(config) * jnp.tanh(mean), normalised))


def test_cnf_acts_closer_to_the_best_action_than_the_behaviour(latent_bandit):
    state, metrics = train(CONFIG, latent_bandit, 800)
    distance = float(np.mean(np.abs(median_action(CONFIG, state, latent_bandit) - best_action(GRID))))
    assert distance < 0.6 * BEHAVIOUR_DISTANCE, (distance, BEHAVIOUR_DISTANCE)
    assert float(metrics["critic_loss"][-50:].mean()) < float(metrics["critic_loss"][:50].mean())


@pytest.mark.slow  # the flow's own property test covers every latent; this adds the policy's sampling
def test_sampled_policy_actions_stay_inside_the_bounds(latent_bandit):
    state, _ = train(CONFIG, latent_bandit, 5)
    observations = jnp.asarray(np.random.default_rng(0).normal(0, 3, (512, 2)), jnp.float32)  # far off the data too
    actions = cnf.act(CONFIG, state.actor, latent_bandit.decoder, observations, jax.random.PRNGKey(1))
    assert np.all(np.abs(np.asarray(actions)) <= latent_bandit.max_action)


@pytest.mark.slow
def test_the_vae_ablation_trains_through_the_vae():
    offline = make_offline_data(bandit_dataset())
    vae_config = vae.VAEConfig(hidden=32, depth=2, steps=200, batch_size=128)
    model, _ = vae.pretrain_vae(vae_config, offline.observations, offline.actions, offline.max_action,
                                jax.random.PRNGKey(0))
    config = dataclasses.replace(CONFIG, decoder="vae")
    data = make_latent_data(offline, model)
    state, metrics = train(config, data, 20)
    assert state.actor.weights[-1].shape[1] == 2 * model.latent_dim
    assert np.isfinite(np.asarray(metrics["actor_loss"])).all()


def test_bad_options_name_the_field():
    with pytest.raises(ConfigError, match="decoder"):
        cnf.CNFConfig(decoder="gan")
    with pytest.raises(ConfigError, match="flow"):
        cnf.CNFConfig(flow="huge")
