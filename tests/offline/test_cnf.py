"""CNF: latent AWAC through a frozen flow learns on the bandit whose best action is known; its actions stay in the
support of the data; the VAE decoder (the ablation) trains too."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fluxrl.core.config import ConfigError
from fluxrl.offline import cnf, vae
from fluxrl.offline.common import make_offline_data, network
from fluxrl.offline.flow_training import pretrain_flow
from fluxrl.offline.flows import PRESETS, make_flow
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
    return np.asarray(data.decoder.decode(cnf.decoder_latent(config, jnp.tanh(mean)), normalised))


def test_cnf_acts_closer_to_the_best_action_than_the_behaviour(latent_bandit):
    state, metrics = train(CONFIG, latent_bandit, 800)
    distance = float(np.mean(np.abs(median_action(CONFIG, state, latent_bandit) - best_action(GRID))))
    assert distance < 0.6 * BEHAVIOUR_DISTANCE, (distance, BEHAVIOUR_DISTANCE)
    assert float(metrics["critic_loss"][-50:].mean()) < float(metrics["critic_loss"][:50].mean())


@pytest.mark.slow  # a second flow to pre-train; the latent's mapping is tested apart, fast
def test_the_normal_prior_ablation_acts_closer_to_the_best_action_and_uses_the_priors_tails():
    offline = make_offline_data(bandit_dataset())
    flow, _ = pretrain_flow(dataclasses.replace(TINY_FLOW, prior="normal"), offline.observations, offline.actions,
                            offline.max_action, jax.random.PRNGKey(0))
    data = make_latent_data(offline, flow)
    config = dataclasses.replace(CONFIG, prior="normal")
    state, _ = train(config, data, 800)
    distance = float(np.mean(np.abs(median_action(config, state, data) - best_action(GRID))))
    assert distance < 0.6 * BEHAVIOUR_DISTANCE, (distance, BEHAVIOUR_DISTANCE)
    normalised = jnp.asarray((GRID - np.asarray(data.obs_mean)) / np.asarray(data.obs_std))
    latents = np.asarray(cnf.sample_latent(config, state.actor, normalised, jax.random.PRNGKey(1)))
    assert np.mean(np.abs(latents) > 1.0) > 0.01  # the box (-1, 1) would have held every one of them


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


def actor_with_mean(mean: list[float]):
    """A latent actor whose output is `mean` with a vanishing standard deviation at every state."""
    actor = network(2, 2 * len(mean), 8, 1, jax.random.PRNGKey(0))
    return eqx.tree_at(lambda a: (a.weights[-1], a.biases[-1]), actor,
                       (jnp.zeros_like(actor.weights[-1]), jnp.asarray(mean + [-20.0] * len(mean))))


def test_normal_prior_policy_latent_leaves_the_unit_cube_and_the_uniform_one_does_not():
    actor = actor_with_mean([3.0, -2.0])
    observations = jnp.zeros((4, 2))
    normal = cnf.sample_latent(dataclasses.replace(CONFIG, prior="normal"), actor, observations,
                               jax.random.PRNGKey(1))
    uniform = cnf.sample_latent(CONFIG, actor, observations, jax.random.PRNGKey(1))
    # atanh(tanh(u)) = u: the normal prior's latent is the actor's pre-tanh sample, out on the prior's tails
    np.testing.assert_allclose(np.asarray(normal), np.tile([3.0, -2.0], (4, 1)), atol=1e-3)
    assert np.all(np.abs(np.asarray(uniform)) < 1.0)


def test_normal_prior_latent_is_bounded_only_by_the_official_clamp():
    far = cnf.decoder_latent(dataclasses.replace(CONFIG, prior="normal"), jnp.asarray([1.0, -1.0]))
    np.testing.assert_allclose(np.asarray(far), [6.1, -6.1], atol=0.01)  # atanh(1 - 1e-5)
    assert np.all(np.isfinite(np.asarray(far)))


def test_a_normal_prior_policy_acts_with_the_flows_action_at_its_unbounded_latent():
    offline = make_offline_data(bandit_dataset())
    flow = make_flow(dataclasses.replace(TINY_FLOW, prior="normal"), offline.obs_dim, offline.action_dim,
                     offline.max_action, jax.random.PRNGKey(0), offline.actions[:256], offline.observations[:256])
    observations = offline.observations[:8]
    actions = cnf.act(dataclasses.replace(CONFIG, prior="normal"), actor_with_mean([2.5, -2.5]), flow, observations,
                      jax.random.PRNGKey(1))
    at_latent = flow.decode(jnp.tile(jnp.asarray([2.5, -2.5]), (8, 1)), observations)
    at_cube_edge = flow.decode(jnp.tile(jnp.asarray([1.0, -1.0]), (8, 1)), observations)
    np.testing.assert_allclose(np.asarray(actions), np.asarray(at_latent), atol=1e-3)
    assert not np.allclose(np.asarray(actions), np.asarray(at_cube_edge), atol=1e-2)


def test_paper_flow_preset_pretrains_for_the_official_epochs_of_the_dataset_kind():
    paper = cnf.CNFConfig(flow="paper")
    epochs = {name: cnf.flow_config(paper, name).epochs
              for name in ("hopper-expert", "halfcheetah-medium-expert", "hopper-medium", "halfcheetah-medium-replay")}
    assert epochs == {"hopper-expert": 50, "halfcheetah-medium-expert": 50, "hopper-medium": 100,
                      "halfcheetah-medium-replay": 350}
    assert cnf.flow_config(dataclasses.replace(paper, flow_epochs=7), "hopper-medium-replay").epochs == 7
    assert cnf.flow_config(CONFIG, "hopper-medium-replay").epochs == PRESETS["cpu"].epochs


def test_prepare_data_pretrains_the_paper_flow_with_the_datasets_schedule(monkeypatch):
    from fluxrl.offline import flow_training

    used = []

    def record(config, *args, **kwargs):
        used.append(config)
        raise RuntimeError("recorded")

    monkeypatch.setattr(flow_training, "cached_flow", record)
    with pytest.raises(RuntimeError, match="recorded"):
        cnf.prepare_data(cnf.CNFConfig(flow="paper"), make_offline_data(bandit_dataset()),
                         "halfcheetah-medium-replay", cache_dir="unused")
    assert used[0].epochs == 350 and used[0].blocks == 12


def test_bad_options_name_the_field():
    with pytest.raises(ConfigError, match="decoder"):
        cnf.CNFConfig(decoder="gan")
    with pytest.raises(ConfigError, match="flow"):
        cnf.CNFConfig(flow="huge")
