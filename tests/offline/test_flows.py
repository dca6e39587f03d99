"""CNF's state-conditioned flow: it inverts, its log-determinant is the Jacobian's, its density integrates to one,
every latent decodes inside the action bounds, pre-training learns a multimodal toy, keeps the best validation
epoch, and the cache reuses (or replaces) its file."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from fluxrl.core.config import ConfigError
from fluxrl.offline import flow_training, flows
from fluxrl.offline.common import OfflineData
from fluxrl.offline.flow_training import (TOY_CONFIG, TOY_STD, cached_flow, mean_nll, plot_toy, pretrain_flow,
                                          toy_centres, toy_dataset)
from fluxrl.offline.flows import PRESETS, FlowConfig, make_flow

SMALL = FlowConfig(blocks=2, hidden=32)  # both coupling parities
OBS_DIM = 5
# Compiled once per flow structure (eager calls would compile every operation for every new shape).
encode = eqx.filter_jit(lambda flow, actions, observations: flow.encode_and_log_det(actions, observations))
decode = eqx.filter_jit(lambda flow, latent, observations: flow.decode(latent, observations))
log_prob = eqx.filter_jit(lambda flow, actions, observations: flow.log_prob(actions, observations))
sample = eqx.filter_jit(lambda flow, key, observations: flow.sample(key, observations))


def random_flow(action_dim, max_action, prior="uniform", seed=0, noise=0.1):
    """A small flow initialised on random data, every array then perturbed so no coupling is the identity."""
    rng = np.random.default_rng(seed)  # numpy draws: a JAX draw compiles for every new shape
    actions = max_action * rng.uniform(-0.9, 0.9, (64, action_dim))
    flow = make_flow(dataclasses.replace(SMALL, prior=prior), OBS_DIM, action_dim, max_action,
                     jax.random.PRNGKey(seed), actions, rng.normal(size=(64, OBS_DIM)))
    arrays, static = eqx.partition(flow, eqx.is_inexact_array)
    arrays = jax.tree.map(lambda leaf: leaf + noise * rng.normal(size=leaf.shape).astype(np.float32), arrays)
    return eqx.combine(arrays, static)


def inputs(action_dim, max_action, count=32, seed=1):
    rng = np.random.default_rng(seed)
    actions = max_action * rng.uniform(-0.95, 0.95, (count, action_dim)).astype(np.float32)
    return jnp.asarray(actions), jnp.asarray(rng.normal(size=(count, OBS_DIM)), jnp.float32)


@pytest.mark.parametrize("action_dim,max_action,prior", [(3, 2.0, "uniform"), (4, 0.5, "normal")])
def test_decode_inverts_encode(action_dim, max_action, prior):
    flow = random_flow(action_dim, max_action, prior)
    actions, observations = inputs(action_dim, max_action)
    latent, _ = encode(flow, actions, observations)
    assert latent.shape == (32, action_dim + action_dim % 2)
    np.testing.assert_allclose(decode(flow, latent, observations), actions, atol=1e-5 * max_action)


def test_scanned_blocks_compute_what_unrolled_blocks_do(monkeypatch):
    config = FlowConfig(blocks=3, hidden=16)
    actions, observations = inputs(2, 1.0)
    make = lambda: make_flow(config, OBS_DIM, 2, 1.0, jax.random.PRNGKey(4), actions, observations)
    unrolled = make()
    monkeypatch.setattr(flows, "SCAN_FROM_BLOCKS", 2)  # as a long flow runs: pairs in a scan, the odd last apart
    scanned = make()
    assert len(scanned.bijection.bijections) == 4 and len(unrolled.bijection.bijections) == config.blocks + 2
    latent, log_det = encode(scanned, actions, observations)
    np.testing.assert_allclose(log_prob(unrolled, actions, observations),
                               log_det + scanned.prior_log_prob(latent), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(decode(scanned, latent, observations), actions, atol=1e-5)


@pytest.mark.parametrize("prior", ["uniform", "normal"])
def test_log_det_equals_the_autodiff_jacobian(prior):
    flow = random_flow(4, 0.5, prior)
    actions, observations = inputs(4, 0.5, count=8)
    _, log_det = encode(flow, actions, observations)

    @eqx.filter_jit
    def autodiff_log_det(flow, actions, observations):
        encode_one = lambda action, observation: flow.encode(action[None], observation[None])[0]
        return jnp.linalg.slogdet(jax.vmap(jax.jacfwd(encode_one))(actions, observations))

    sign, expected = autodiff_log_det(flow, actions, observations)
    assert bool(jnp.all(sign != 0))
    np.testing.assert_allclose(log_det, expected, rtol=1e-4, atol=2e-3)


def test_density_integrates_to_one_over_the_action_box():
    max_action = 2.0
    flow = random_flow(2, max_action)
    cells = 250
    grid = np.linspace(-max_action, max_action, cells + 1)[1:] - max_action / cells  # cell midpoints
    actions = jnp.asarray(np.stack(np.meshgrid(grid, grid), -1).reshape(-1, 2), jnp.float32)
    observations = jnp.broadcast_to(jax.random.normal(jax.random.PRNGKey(3), (OBS_DIM,)), (actions.shape[0], OBS_DIM))
    mass = float(jnp.sum(jnp.exp(log_prob(flow, actions, observations)))) * (2 * max_action / cells) ** 2
    assert abs(mass - 1.0) < 0.03


# (action size, max_action) -> a strongly perturbed flow; both have 4 latent dimensions.
BOUNDS_FLOWS = {shape: random_flow(*shape, noise=0.5, seed=7) for shape in ((3, 2.0), (4, 0.5))}


@settings(max_examples=30, deadline=None)
@given(shape=st.sampled_from(sorted(BOUNDS_FLOWS)),
       latent=hnp.arrays(np.float32, (8, 4), elements=st.floats(-1.0, 1.0, width=32)),
       observations=hnp.arrays(np.float32, (8, OBS_DIM), elements=st.floats(-10.0, 10.0, width=32)))
def test_every_latent_in_the_cube_decodes_inside_the_action_bounds(shape, latent, observations):
    action_dim, max_action = shape
    actions = np.asarray(decode(BOUNDS_FLOWS[shape], latent, observations))
    assert actions.shape == (8, action_dim)
    assert np.all(np.isfinite(actions))
    assert np.all(np.abs(actions) <= max_action)


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="prior"):
        FlowConfig(prior="laplace")
    with pytest.raises(ConfigError, match="validation_fraction"):
        FlowConfig(validation_fraction=1.0)
    with pytest.raises(ConfigError, match="blocks"):
        FlowConfig(blocks=0)
    assert PRESETS["cpu"].blocks < PRESETS["paper"].blocks


@pytest.fixture(scope="module")
def toy():
    observations, actions = toy_dataset(4096)
    flow, history = pretrain_flow(TOY_CONFIG, observations, actions, 1.0, jax.random.PRNGKey(0))
    return observations, actions, flow, history


def nearest_centre(samples, observations):
    """(index of the nearest of the 4 centres at each sample's state, distance to it)."""
    distances = np.linalg.norm(samples[:, None] - toy_centres(observations), axis=-1)
    return distances.argmin(1), distances.min(1)


def test_pretraining_learns_the_state_conditioned_clusters(toy):
    observations, actions, flow, _ = toy
    samples = np.asarray(sample(flow, jax.random.PRNGKey(1), jnp.asarray(observations)))
    assert np.all(np.abs(samples) <= 1.0)
    cluster, distance = nearest_centre(samples, observations)
    # Every cluster holds about a quarter of the samples (a lost or merged mode would be 0.25 off) ...
    np.testing.assert_allclose(np.bincount(cluster, minlength=4) / len(samples), 0.25, atol=0.12)
    # ... most samples lie on a cluster (the data: 0.99) and the marginals are close in Wasserstein-1 distance
    # (a lost mode moves a marginal by ~0.25) ...
    assert np.mean(distance < 3 * TOY_STD) > 0.55
    for dimension in range(2):
        assert np.mean(np.abs(np.sort(samples[:, dimension]) - np.sort(actions[:, dimension]))) < 0.1
    # ... and on the clusters of the sample's own state: at the opposite state they lie elsewhere.
    far = np.abs(observations[:, 0]) > 0.5
    _, distance_flipped = nearest_centre(samples[far], -observations[far])
    assert np.mean(distance[far] < 3 * TOY_STD) > 2 * np.mean(distance_flipped < 3 * TOY_STD)


def held_out_nll(flow, history, observations, actions, config):
    """The flow's validation NLL, computed as pre-training computes it (same rows, same chunks)."""
    rows = history["validation_rows"]
    return float(mean_nll(flow, jnp.asarray(actions[rows]), jnp.asarray(observations[rows]),
                          min(len(rows), config.batch_size)))


def test_pretraining_returns_the_best_validation_epoch(toy):
    observations, actions, flow, history = toy
    assert history["best_epoch"] == int(np.argmin(history["validation_nll"]))
    assert history["validation_nll"][-1] < history["validation_nll"][0]
    rows = history["validation_rows"]
    assert len(rows) == round(TOY_CONFIG.validation_fraction * len(actions))
    nll = held_out_nll(flow, history, observations, actions, TOY_CONFIG)
    assert nll == pytest.approx(history["best_validation_nll"], abs=1e-6)


# Tiny runs: 36 training rows, one step an epoch at a high learning rate, so 40 epochs overfit.
TINY = FlowConfig(blocks=2, hidden=64, lr=1e-2, grad_clip=10.0, batch_size=36, epochs=40)
TINY_ROWS = 40


def test_an_overfitting_run_returns_an_earlier_epoch():
    observations, actions = toy_dataset(TINY_ROWS, seed=3)
    flow, history = pretrain_flow(TINY, observations, actions, 1.0, jax.random.PRNGKey(0))
    assert history["best_epoch"] < TINY.epochs - 1
    nll = held_out_nll(flow, history, observations, actions, TINY)
    assert nll == pytest.approx(history["best_validation_nll"], abs=1e-6)
    assert nll < history["validation_nll"][-1]


def test_plot_toy_draws_data_and_samples(toy, tmp_path):
    path = tmp_path / "img" / "flow_toy.png"
    plot_toy(path, flow=toy[2])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cached_flow_reuses_its_file_and_replaces_a_corrupt_one(tmp_path, monkeypatch):
    config = dataclasses.replace(TINY, epochs=2)
    observations, actions = toy_dataset(TINY_ROWS, seed=5)
    zeros = np.zeros(TINY_ROWS, np.float32)
    data = OfflineData(observations, actions, zeros, observations, zeros, np.zeros(1, np.float32),
                       np.ones(1, np.float32))
    calls = []
    original = flow_training.pretrain_flow
    monkeypatch.setattr(flow_training, "pretrain_flow", lambda *a, **k: calls.append(1) or original(*a, **k))
    first = cached_flow(config, data, "toy/tiny", tmp_path, seed=1)
    path = flow_training.cache_path(config, data, "toy/tiny", tmp_path, seed=1)
    assert path.is_file() and path.with_suffix(".json").is_file() and len(calls) == 1
    again = cached_flow(config, data, "toy/tiny", tmp_path, seed=1)
    assert len(calls) == 1  # read, not retrained
    for saved, loaded in zip(jax.tree.leaves(eqx.filter(first, eqx.is_array)),
                             jax.tree.leaves(eqx.filter(again, eqx.is_array))):
        np.testing.assert_array_equal(saved, loaded)
    cached_flow(config, data, "toy/tiny", tmp_path, seed=2)
    assert len(calls) == 2  # another seed, another file
    for corrupt in (b"not a flow", path.read_bytes()[:100]):
        path.write_bytes(corrupt)
        replaced = cached_flow(config, data, "toy/tiny", tmp_path, seed=1)
        assert np.all(np.isfinite(np.asarray(log_prob(replaced, data.actions, data.observations))))
        assert path.stat().st_size > 1000
    assert len(calls) == 4
    cached_flow(config, data, "toy/tiny", tmp_path, seed=1)
    assert len(calls) == 4
