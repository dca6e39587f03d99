"""PLAS and its conditional VAE: bounded decoding, pre-training, the on-disk cache, learning on the one-step bandit of
test_algorithms, and a run through the runner with host-side evaluation."""

import dataclasses

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxrl.core import runner
from fluxrl.core.config import ConfigError
from fluxrl.offline import plas, vae as vae_module
from fluxrl.offline.common import Evaluation, make_offline_data
from offline_toy import pendulum_shaped
from test_algorithms import BEHAVIOUR_DISTANCE, GRID, bandit_dataset, best_action

VAE_CONFIG = vae_module.VAEConfig(hidden=64, steps=2000, lr=1e-3)
TINY_VAE = vae_module.VAEConfig(hidden=8, steps=20, batch_size=16)


@pytest.fixture(scope="module")
def bandit():
    return make_offline_data(bandit_dataset())


@pytest.fixture(scope="module")
def pendulum():
    """64 random Pendulum-shaped transitions (actions in +-2) with a 5-step, 1-episode evaluation."""
    dataset = pendulum_shaped()
    evaluation = Evaluation(lambda: gymnasium.make("Pendulum-v1", max_episode_steps=5), episodes=1,
                            normalized_score=lambda mean_return: mean_return)
    return make_offline_data(dataset, max_action=2.0, evaluation=evaluation)


@pytest.fixture(scope="module")
def pretrained(bandit):
    """(vae, history) pre-trained on the bandit's actions."""
    return vae_module.pretrain_vae(VAE_CONFIG, bandit.observations, bandit.actions, bandit.max_action,
                                   jax.random.PRNGKey(0), chunk=500)


_decode = jax.jit(lambda vae, latent, observations: vae.decode(latent, observations))
BOUNDED = {m: vae_module.ConditionalVAE(TINY_VAE, 3, 2, m, jax.random.PRNGKey(1)) for m in (0.5, 1.0, 2.0)}


@settings(max_examples=40, deadline=None)
@given(max_action=st.sampled_from(sorted(BOUNDED)),
       latent=st.lists(st.floats(-1e6, 1e6, width=32), min_size=4, max_size=4),
       observation=st.lists(st.floats(-100, 100, width=32), min_size=3, max_size=3))
def test_decoded_actions_stay_inside_the_action_bounds_for_any_latent(max_action, latent, observation):
    actions = np.asarray(_decode(BOUNDED[max_action], jnp.asarray([latent]), jnp.asarray([observation])))
    assert actions.shape == (1, 2)
    assert np.all(np.abs(actions) <= max_action)


def test_pretraining_lowers_the_elbo_loss_and_reconstructs_better_than_the_mean_action(bandit, pretrained):
    vae, history = pretrained
    assert history["step"].tolist() == [500, 1000, 1500, 2000]
    assert history["loss"][-1] < history["loss"][0]
    untrained = vae_module.ConditionalVAE(VAE_CONFIG, 2, 1, bandit.max_action, jax.random.PRNGKey(7))
    elbo = lambda model: float(vae_module.elbo_loss(model, bandit.observations, bandit.actions,
                                                    jax.random.PRNGKey(3), VAE_CONFIG.kl_weight)[0])
    assert elbo(vae) < 0.8 * elbo(untrained), (elbo(vae), elbo(untrained))
    mean, _ = vae.encode(bandit.observations, bandit.actions)
    reconstruction_error = float(jnp.mean((vae.decode(mean, bandit.observations) - bandit.actions) ** 2))
    mean_action_error = float(jnp.mean((bandit.actions - jnp.mean(bandit.actions, axis=0)) ** 2))
    assert reconstruction_error < 0.65 * mean_action_error, (reconstruction_error, mean_action_error)


def test_elbo_loss_is_the_weighted_sum_of_reconstruction_and_kl():
    vae = BOUNDED[1.0]
    observations, actions = jnp.ones((5, 3)), jnp.full((5, 2), 0.3)
    loss, (recon, kl) = vae_module.elbo_loss(vae, observations, actions, jax.random.PRNGKey(2), 0.5)
    assert float(loss) == pytest.approx(float(recon) + 0.5 * float(kl), rel=1e-6)
    mean, log_std = vae.encode(observations, actions)
    by_hand = -0.5 * np.mean(1 + 2 * np.asarray(log_std) - np.asarray(mean) ** 2 - np.exp(2 * np.asarray(log_std)))
    assert float(kl) == pytest.approx(by_hand, rel=1e-5)


def test_cached_vae_is_trained_once_then_read_and_a_corrupt_file_is_replaced(pendulum, tmp_path, monkeypatch):
    first = vae_module.cached_vae(TINY_VAE, pendulum, "pendulum/v0", tmp_path)
    path = vae_module.cache_path(TINY_VAE, pendulum, "pendulum/v0", tmp_path)
    assert path.is_file() and path.parent == tmp_path
    trainings = []
    original = vae_module.pretrain_vae
    monkeypatch.setattr(vae_module, "pretrain_vae", lambda *a, **k: trainings.append(1) or original(*a, **k))
    again = vae_module.cached_vae(TINY_VAE, pendulum, "pendulum/v0", tmp_path)
    assert trainings == []
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(again)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    path.write_bytes(b"not a vae")
    replaced = vae_module.cached_vae(TINY_VAE, pendulum, "pendulum/v0", tmp_path)
    assert trainings == [1]
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(replaced)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # same seed, same VAE
    assert vae_module.cache_path(TINY_VAE, pendulum, "pendulum/v0", tmp_path, seed=1) != path
    assert vae_module.cache_path(vae_module.VAEConfig(hidden=9), pendulum, "pendulum/v0", tmp_path) != path


def train(config, data, updates):
    state = plas.init(config, data, jax.random.PRNGKey(0))
    scan = jax.jit(lambda s, d: jax.lax.scan(lambda c, _: plas.update(config, d, c), s, None, length=updates))
    state, metrics = scan(state, data)
    assert set(metrics) == {"critic_loss", "actor_loss", "q_mean"}
    assert all(np.isfinite(np.asarray(v)).all() for v in metrics.values())
    return state


def test_plas_acts_closer_to_the_best_action_than_the_behaviour_within_the_latent_box(bandit, pretrained):
    # algos.py's default actor lr (main.py lowers it to 1e-4 for 500k updates); 500 updates here.
    config = plas.PLASConfig(hidden=(32, 32), actor_lr=1e-3, max_latent_action=1.5, vae=VAE_CONFIG)
    data = plas.make_data(bandit, pretrained[0])
    state = train(config, data, updates=500)
    normalised = (GRID - np.asarray(bandit.obs_mean)) / np.asarray(bandit.obs_std)
    actions = np.asarray(plas.act(config, state.actor, data.decoder, normalised))
    distance = float(np.mean(np.abs(actions - best_action(GRID))))
    # The behaviour's mean (what BC learns) is BEHAVIOUR_DISTANCE away; improving on it needs the critic.
    assert distance < 0.7 * BEHAVIOUR_DISTANCE, distance
    latent = np.asarray(plas.latent_action(config, state.actor, bandit.observations))
    assert np.all(np.abs(latent) <= 1.5)


def test_the_perturbation_moves_the_decoded_action_by_at_most_phi(bandit, pretrained):
    config = plas.PLASConfig(hidden=(16,), perturbation_hidden=(16,), perturbation=True, phi=0.05)
    data = plas.make_data(bandit, pretrained[0])
    state = plas.init(config, data, jax.random.PRNGKey(0))
    latent, actions = plas.policy_action(config, state.actor, data.decoder, bandit.observations)
    moved = np.abs(np.asarray(actions - data.decoder.decode(latent, bandit.observations)))
    assert np.all(moved <= 0.05 + 1e-6) and moved.max() > 0
    assert np.all(np.abs(np.asarray(actions)) <= bandit.max_action)


def test_clipped_double_q_target_weights_the_smaller_twin_by_lambda():
    target = plas.clipped_double_q_target(jnp.array([1.0, 4.0]), jnp.array([3.0, 2.0]), 0.75)
    np.testing.assert_allclose(np.asarray(target), [0.75 * 1 + 0.25 * 3, 0.75 * 2 + 0.25 * 4])


@pytest.mark.parametrize("make", [
    lambda: plas.PLASConfig(lmbda=1.5), lambda: plas.PLASConfig(max_latent_action=0.0),
    lambda: plas.PLASConfig(hidden=(0,)), lambda: vae_module.VAEConfig(kl_weight=-1.0),
])
def test_a_bad_config_value_is_one_error_naming_the_field(make):
    with pytest.raises(ConfigError, match=r"^(lmbda|max_latent_action|hidden|kl_weight) must be"):
        make()


def test_perturbation_options_without_the_perturbation_layer_are_refused_by_name():
    with pytest.raises(ConfigError, match="phi does nothing without the perturbation layer"):
        plas.PLASConfig(phi=0.1)
    with pytest.raises(ConfigError, match="perturbation_hidden does nothing"):
        plas.PLASConfig(perturbation_hidden=(64,))
    assert plas.PLASConfig(perturbation=True, phi=0.1).phi == 0.1


def test_a_run_keeps_the_vae_out_of_the_state_and_evaluates_on_the_host(pendulum, tmp_path):
    config = plas.PLASConfig(hidden=(16,), batch_size=8, vae=TINY_VAE)
    data = plas.prepare_data(config, pendulum, "pendulum-random", cache_dir=tmp_path / "vae")
    with pytest.raises(ValueError, match="decodes into"):
        plas.make_data(dataclasses.replace(pendulum, max_action=1.0), data.decoder)
    result = runner.run(plas.ALGORITHM, config, runner.RunConfig(
        iterations=4, num_seeds=2, out=str(tmp_path / "run"), log_every=2, eval_every=2, progress=False), data=data)
    assert {"return", "normalized_score", "critic_loss", "actor_loss", "q_mean"} <= set(result.summary)
    is_vae = lambda node: isinstance(node, vae_module.ConditionalVAE)
    assert not any(map(is_vae, jax.tree.leaves(result.state, is_leaf=is_vae)))  # the VAE is not per seed
    assert np.asarray(result.state.critics[0].weights[0]).shape == (2, 4, 16)  # seeds x [s, a] x hidden
