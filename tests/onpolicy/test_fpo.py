"""FPO: the CFM loss, the ratio and its gradient at the rollout's parameters, the Euler sampler, the time convention,
the denoising-MDP baseline, learning a toy task, and the grid world's saddle-state measurements."""

import csv
import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.stats

from fluxrl.envs.control import registry
from fluxrl.core import runner
from fluxrl.core.config import ConfigError
from fluxrl.core.nets import MLP
from fluxrl.envs.control import gridworld
from fluxrl.onpolicy import fpo, gridworld_eval
from toy_env import PointToTarget

TOY = "test-point"
CONFIG = fpo.FPOConfig(env=TOY, num_envs=16, num_steps=50, epochs=4, minibatches=4, lr=1e-3, gamma=0.95,
                       actor_hidden=(32, 32), critic_hidden=(32, 32), n_mc=4, flow_steps=4)
MDP = dict(ratio="denoising-mdp", n_mc=fpo.FPOConfig.n_mc)  # the DPPO-style ratio takes no CFM options


@pytest.fixture(autouse=True)
def toy_envs(monkeypatch):
    """The toy environment, registered for the test only."""
    monkeypatch.setitem(registry.ENVS, TOY, PointToTarget)


def constant_actor(velocity, observation_size=1, scale=1.0):
    """A flow actor whose velocity is `velocity` everywhere (a zero-weight network with that output bias)."""
    net = MLP((observation_size + len(velocity) + 8, 4, len(velocity)), jax.random.PRNGKey(0), "relu")
    net = eqx.tree_at(lambda n: n.biases[-1], jax.tree.map(jnp.zeros_like, net), jnp.asarray(velocity, jnp.float32))
    return fpo.FlowActor(net, scale, 8)


def test_cfm_loss_matches_a_hand_computed_case():
    actor = constant_actor([0.4, 0.0])
    action, eps, tau = jnp.array([1.0, -2.0]), jnp.array([[0.5, 0.5]]), jnp.array([[0.3]])
    # target velocity a - eps = (0.5, -2.5); errors (0.4 - 0.5, 0 + 2.5); mean of squares (0.01 + 6.25) / 2 = 3.13
    u = fpo.cfm_loss(actor, jnp.zeros(1), action, tau, eps, "u")
    np.testing.assert_allclose(u, [3.13], rtol=1e-6)
    # as a noise prediction: eps_hat = x_tau - tau v with x_tau = 0.3 a + 0.7 eps = (0.65, -0.25),
    # eps_hat = (0.53, -0.25), error (-0.03, 0.75): (0.0009 + 0.5625) / 2 = 0.2817 = tau^2 * 3.13
    np.testing.assert_allclose(fpo.cfm_loss(actor, jnp.zeros(1), action, tau, eps, "eps"), [0.2817], rtol=1e-5)


@pytest.fixture
def rollout_batch():
    """An actor, 32 observations, the actions it sampled and their stored extras, for every ratio variant."""
    actor = fpo.init(CONFIG, None, jax.random.PRNGKey(1)).actor
    observation = jax.random.normal(jax.random.PRNGKey(2), (32, 2))
    advantage = jax.random.normal(jax.random.PRNGKey(3), (32,))
    return actor, observation, advantage


@pytest.mark.parametrize("variant", [dict(), dict(pair_average="per-pair"), dict(pair_average="clamped"),
                                     dict(output_mode="u"), MDP, dict(time_embed_dim=0)],
                         ids=["averaged", "per-sample", "clamped", "u", "mdp", "raw-time"])
def test_ratio_is_one_at_the_rollout_parameters_and_its_gradient_is_the_likelihood_surrogates(rollout_batch, variant):
    actor, observation, advantage = rollout_batch
    config = dataclasses.replace(CONFIG, **variant)
    _, action, extras = fpo.sample(config)(actor)(observation, jax.random.PRNGKey(4))
    log_ratio, _ = fpo.log_ratio(config, actor, observation, action, extras)
    np.testing.assert_allclose(log_ratio, 0.0, atol=1e-6)

    def surrogate(actor):
        ratio = jnp.exp(fpo.log_ratio(config, actor, observation, action, extras)[0])
        return jnp.mean(ratio * advantage.reshape(-1, *(1,) * (ratio.ndim - 1)))

    def log_likelihood_proxy(actor):  # what the ratio stands for: -CFM loss (FPO) or the step log-likelihoods
        if config.ratio == "denoising-mdp":
            proxy = fpo.denoising_log_likelihood(actor, observation, extras[0], config.sigma)
        else:
            proxy = -fpo.cfm_loss(actor, observation, action, extras[0], extras[1], config.output_mode)
            if config.pair_average != "per-pair":
                proxy = jnp.mean(proxy, axis=-1)
        return jnp.mean(proxy * advantage.reshape(-1, *(1,) * (proxy.ndim - 1)))

    # At theta = theta_old, d r / d theta = d log r / d theta: the ratio's gradient is that of -CFM loss.
    for got, want in zip(jax.tree.leaves(jax.grad(surrogate)(actor)),
                         jax.tree.leaves(jax.grad(log_likelihood_proxy)(actor))):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(jax.grad(surrogate)(actor)))


def test_euler_sampler_follows_a_linear_field_exactly_and_converges_to_its_closed_form_flow():
    matrix = jnp.array([[-0.5, 1.0], [-1.0, 0.2]])
    x0 = jnp.array([[1.0, -0.5], [0.3, 2.0]])
    velocity = lambda x, tau: x @ matrix.T
    path = fpo.euler_path(velocity, x0, 5)
    step = np.eye(2) + np.asarray(matrix) / 5
    assert path.shape == (6, 2, 2)
    np.testing.assert_allclose(path[-1], x0 @ np.linalg.matrix_power(step, 5).T, rtol=1e-5)
    np.testing.assert_allclose(path[0], x0)
    fine = fpo.euler_path(velocity, x0, 4000)[-1]
    np.testing.assert_allclose(fine, x0 @ scipy.linalg.expm(np.asarray(matrix)).T, rtol=1e-3, atol=1e-3)
    # A time-dependent field dx/dtau = tau x has the flow x(1) = exp(1/2) x(0); Euler's error shrinks as 1/K.
    errors = [float(jnp.abs(fpo.euler_path(lambda x, t: t * x, x0, k)[-1] - np.exp(0.5) * x0).max()) for k in (50, 100)]
    assert errors[1] < errors[0] * 0.55 and errors[1] < 0.05


@pytest.mark.parametrize("output_mode", ["u", "eps"])
def test_the_noise_at_one_convention_gives_the_same_losses_and_ratio(output_mode):
    """The official JAX code's convention: x_t = t eps + (1 - t) a, velocity eps - a, the eps loss from
    x1_pred = x_t + (1 - t) v. The field v'(x, t) = -v(x, 1 - t) there is the same policy as v here."""
    actor = fpo.init(CONFIG, None, jax.random.PRNGKey(5)).actor
    old = eqx.tree_at(lambda a: a.net, actor, jax.tree.map(lambda w: w * 0.9, actor.net))
    key_tau, key_eps, key_obs = jax.random.split(jax.random.PRNGKey(6), 3)
    observation = jax.random.normal(key_obs, (10, 2))
    action = jax.random.normal(key_eps, (10, 1))
    tau, eps = fpo.draw_pairs(key_tau, (10, 6), 1, 10, "uniform")

    def official_loss(actor, t):
        x_t = t * eps + (1.0 - t) * action[:, None, :]
        v = -actor.velocity(observation[:, None, :], x_t, 1.0 - t)
        if output_mode == "u":
            return jnp.mean((v - (eps - action[:, None, :])) ** 2, axis=-1)
        return jnp.mean((eps - (x_t + (1.0 - t) * v)) ** 2, axis=-1)

    ours = [jax.jit(fpo.cfm_loss, static_argnums=5)(a, observation, action, tau, eps, output_mode)
            for a in (old, actor)]
    theirs = [jax.jit(official_loss)(a, 1.0 - tau) for a in (old, actor)]
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jnp.mean(ours[0], -1) - jnp.mean(ours[1], -1),
                               jnp.mean(theirs[0], -1) - jnp.mean(theirs[1], -1), rtol=1e-4, atol=1e-6)


def test_denoising_log_likelihood_is_the_gaussian_density_of_each_step():
    actor = constant_actor([1.0, -1.0])
    path = jnp.array([[0.0, 0.0], [0.6, -0.5], [1.0, -1.2]])  # two steps: mean moves by v / 2 = (0.5, -0.5)
    sigma = 0.2
    log_p = fpo.denoising_log_likelihood(actor, jnp.zeros(1), path, sigma)
    expected = [scipy.stats.norm.logpdf([0.6, -0.5], [0.5, -0.5], sigma).sum(),
                scipy.stats.norm.logpdf([1.0, -1.2], [1.1, -1.0], sigma).sum()]
    np.testing.assert_allclose(log_p, expected, rtol=1e-5)


def test_clamped_pairs_bound_each_difference_and_the_mean_as_the_official_grid_world():
    """r = exp(clip(mean_i clip(l_old_i - l_i, -3, 3), -3, 3)) (gridworld/models/fpo.py:212-216)."""
    config = dataclasses.replace(CONFIG, pair_average="clamped", output_mode="u")
    actor = constant_actor([0.0], observation_size=2)
    tau = jnp.full((1, 3, 1), 0.5)
    eps = jnp.zeros((1, 3, 1))
    action = jnp.array([[2.0]])  # current losses (v - (a - eps))^2 = 4 for every pair
    old = jnp.array([[14.0, 4.5, 3.0]])  # differences 10 -> 3, 0.5, -1: mean 2.5 / 3
    log_ratio, _ = fpo.log_ratio(config, actor, jnp.zeros((1, 2)), action, (tau, eps, old))
    np.testing.assert_allclose(log_ratio, [2.5 / 3], rtol=1e-6)
    log_ratio, _ = fpo.log_ratio(config, actor, jnp.zeros((1, 2)), action, (tau, eps, old + 20.0))
    np.testing.assert_allclose(log_ratio, [3.0], rtol=1e-6)  # every difference clamped to 3, then the mean


def test_config_refuses_a_density_free_mdp_and_odd_embeddings():
    with pytest.raises(ConfigError, match="sde_sigma"):
        dataclasses.replace(CONFIG, **MDP, sde_sigma=0.0)
    with pytest.raises(ConfigError, match="even"):
        dataclasses.replace(CONFIG, time_embed_dim=5)
    with pytest.raises(ConfigError, match="output_mode"):
        dataclasses.replace(CONFIG, output_mode="x")
    assert dataclasses.replace(CONFIG, **MDP).sigma == fpo.DEFAULT_MDP_SIGMA
    assert CONFIG.sigma == 0.0


@pytest.mark.parametrize("option", [dict(n_mc=4), dict(t_sampling="uniform"), dict(pair_average="clamped")])
def test_a_cfm_option_under_the_denoising_mdp_ratio_is_refused_by_name(option):
    with pytest.raises(ConfigError, match=f"{next(iter(option))} applies to ratio=cfm only"):
        fpo.FPOConfig(ratio="denoising-mdp", **option)


def test_the_tuned_grid_world_settings_leave_the_cfm_options_out_of_the_denoising_mdp_baseline():
    from fluxrl.commands import train_onpolicy

    cfm = train_onpolicy.parse(["fpo", "--out", "unused-dir"]).algorithm
    mdp = train_onpolicy.parse(["fpo", "--ratio", "denoising-mdp", "--out", "unused-dir"]).algorithm
    assert cfm.n_mc == 50 and cfm.pair_average == "clamped"  # the official grid-world CFM settings
    assert (mdp.ratio, mdp.n_mc, mdp.pair_average) == ("denoising-mdp", 8, "losses") and mdp.lr == cfm.lr
    with pytest.raises(ConfigError, match="n_mc applies to ratio=cfm only"):
        train_onpolicy.parse(["fpo", "--ratio", "denoising-mdp", "--n-mc", "4", "--out", "unused-dir"])


@pytest.mark.slow
def test_fpo_learns_to_reach_the_target(tmp_path):
    run_config = runner.RunConfig(iterations=20, num_seeds=2, out=str(tmp_path / "learn"), log_every=5,
                                  eval_every=1000, checkpoint_every=1000, progress=False)
    result = runner.run(fpo.ALGORITHM, CONFIG, run_config)
    with (tmp_path / "learn" / "metrics.csv").open() as file:
        rows = list(csv.DictReader(file))
    first = np.mean([float(r["episode_return"]) for r in rows if r["iteration"] == "5"])
    last = np.mean([float(r["episode_return"]) for r in rows if r["iteration"] == "20"])
    assert last > first / 2 and last > first + 8, (first, last)
    assert result.summary["env_steps"] == 20 * 16 * 50


def test_saddle_headings_split_two_walls_moves_into_up_and_down():
    cells, headings = gridworld_eval.saddle_headings("two_walls")
    assert (cells[:, 1] == gridworld.CENTER).all() and len(cells) > 10
    moves = gridworld_eval.MOVES
    up, down, level = moves[:, 1] == 1, moves[:, 1] == -1, moves[:, 1] == 0
    for row in headings:
        assert len(set(row[up])) == 1 and len(set(row[down])) == 1 and set(row[up]) != set(row[down])
        assert (row[level] == -1).all()
    # half the samples up, a quarter down, a quarter sideways: shares (1/2, 1/4) in some order
    index = lambda dx, dy: (dx + 1) * 3 + dy + 1
    samples = jnp.array([[index(0, 1), index(1, 1), index(-1, -1), index(1, 0)]] * len(cells))
    shares = np.asarray(gridworld_eval.heading_shares(jnp.asarray(headings), samples))
    np.testing.assert_allclose(np.sort(shares, axis=1), [[0.25, 0.5]] * len(cells))


@pytest.mark.slow
def test_fpo_keeps_both_goals_at_saddle_states_where_gaussian_ppo_commits(tmp_path):
    """The paper's grid-world claim (section 5.1) under the official grid-world protocol, 4 seeds, 100 iterations."""
    from fluxrl.commands.train_onpolicy import algorithm_for
    from fluxrl.onpolicy.tuned import tuned_config

    finals = {}
    for name in ("fpo", "ppo"):
        config = tuned_config(name, "gridworld-two-walls")
        run_config = runner.RunConfig(iterations=100, num_seeds=4, out=str(tmp_path / name), log_every=25,
                                      eval_every=100, eval_at_start=False, checkpoint_every=100, progress=False)
        finals[name] = runner.run(algorithm_for(config), config, run_config).summary["per_seed"]
    fpo_, ppo_ = finals["fpo"], finals["ppo"]
    # Measured (reproduction, seeds 0-3): FPO's moves are two goal modes at 84-100% of the saddle states, the
    # Gaussian's at none; the Gaussian's samples are never two modes by shape.
    assert np.mean(fpo_["saddle_move_modes"]) >= 0.5 and min(fpo_["goals_reached"]) == 2, fpo_
    assert max(ppo_["saddle_move_modes"]) == 0.0 and max(ppo_["saddle_two_modes"]) == 0.0, ppo_
    assert min(fpo_["episode_return"]) == 20.0 and min(ppo_["episode_return"]) == 20.0  # both solve the task
