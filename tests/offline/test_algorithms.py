"""BC, TD3+BC, IQL and AWAC on a one-step bandit whose best action is known; resuming; host-side evaluation."""

import dataclasses

import gymnasium
import jax
import numpy as np
import pytest

from fluxrl.core import runner
from fluxrl.core.config import ConfigError
from fluxrl.offline import awac, bc, iql, td3bc
from fluxrl.offline.common import Evaluation, make_offline_data, sample_batch, soft_update
from fluxrl.offline.datasets import Dataset

SIZE = 2048
UPDATES = 1000
GRID = np.stack([np.linspace(-0.9, 0.9, 41), np.zeros(41)], axis=1).astype(np.float32)
OFFSET = 0.4  # the worse share of the behaviour acts this far above the best action


def best_action(observations):
    """a*(s) = 0.5 s_0: the reward -|a - a*(s)| is highest there."""
    return 0.5 * observations[:, :1]


def behaviour_mean(observations):
    """E[a | s] of the bandit's behaviour: 0.2 * 0 + 0.4 * a* + 0.4 * (a* + OFFSET) (clipping is negligible)."""
    return 0.8 * best_action(observations) + 0.4 * OFFSET


def bandit_dataset(seed=0):
    """One-step episodes, s ~ U[-1, 1]^2; actions: 40% near a*(s) (std 0.1), 40% OFFSET above it (std 0.05), and
    20% uniform on [-1, 1], so the critic sees every action."""
    rng = np.random.default_rng(seed)
    observations = rng.uniform(-1, 1, (SIZE, 2)).astype(np.float32)
    kind = rng.random(SIZE)[:, None]
    near = best_action(observations) + np.where(kind < 0.4, 0.1 * rng.normal(size=(SIZE, 1)),
                                                 OFFSET + 0.05 * rng.normal(size=(SIZE, 1)))
    actions = np.clip(np.where(kind < 0.8, near, rng.uniform(-1, 1, (SIZE, 1))), -1, 1).astype(np.float32)
    rewards = -np.abs(actions - best_action(observations))[:, 0]
    ones = np.ones(SIZE, np.float32)
    return Dataset(observations, actions, rewards.astype(np.float32), ones, 0 * ones, observations)


BEHAVIOUR_DISTANCE = float(np.mean(np.abs(behaviour_mean(GRID) - best_action(GRID))))


@pytest.fixture(scope="module")
def bandit():
    return make_offline_data(bandit_dataset())


def train(module, config, data, updates=UPDATES, seed=0):
    """The state after `updates` updates of one seed, run as the runner runs them (a scan)."""
    state = module.init(config, data, jax.random.PRNGKey(seed))
    scan = jax.jit(lambda s, d: jax.lax.scan(lambda c, _: module.update(config, d, c), s, None, length=updates))
    state, metrics = scan(state, data)
    assert all(np.isfinite(np.asarray(v)).all() for v in metrics.values())
    return state


def policy_distance(module, config, state, data, target=best_action):
    """Mean over a grid of states of |policy action - target(s)|."""
    normalised = (GRID - np.asarray(data.obs_mean)) / np.asarray(data.obs_std)
    actions = np.asarray(module.act(config, state.actor, normalised, data.max_action))
    return float(np.mean(np.abs(actions - target(GRID))))


def test_bc_recovers_the_behaviour_mean(bandit):
    config = bc.BCConfig(hidden=32)
    assert policy_distance(bc, config, train(bc, config, bandit), bandit, behaviour_mean) < 0.05


@pytest.mark.parametrize("module, config", [
    (td3bc, td3bc.TD3BCConfig(hidden=32)),
    (iql, iql.IQLConfig(hidden=32)),
    (awac, awac.AWACConfig(hidden=32, depth=2)),
], ids=["td3bc", "iql", "awac"])
def test_offline_rl_acts_closer_to_the_best_action_than_the_behaviour(module, config, bandit):
    distance = policy_distance(module, config, train(module, config, bandit), bandit)
    # The behaviour's mean (what BC learns) is BEHAVIOUR_DISTANCE away; improving on it needs the critic.
    assert distance < 0.7 * BEHAVIOUR_DISTANCE, distance


def test_iql_with_beta_zero_is_weighted_like_behaviour_cloning(bandit):
    config = iql.IQLConfig(hidden=32, beta=0.0)
    # The Gaussian's mean then fits E[a | s]; with beta 0 the weights are all 1.
    assert policy_distance(iql, config, train(iql, config, bandit), bandit, behaviour_mean) < 0.07


def test_minibatches_come_from_the_dataset_and_soft_updates_interpolate(bandit):
    batch = sample_batch(bandit, jax.random.PRNGKey(3), 64)
    rows = {tuple(row) for row in np.asarray(bandit.observations)}
    assert all(tuple(row) in rows for row in np.asarray(batch.observations))
    assert np.asarray(batch.dones).tolist() == [1.0] * 64
    mixed = soft_update({"w": np.zeros(3)}, {"w": np.ones(3)}, 0.25)
    np.testing.assert_allclose(mixed["w"], 0.25)


def test_states_are_normalised_by_the_dataset_statistics():
    data = make_offline_data(bandit_dataset()._replace(observations=3.0 + 2.0 * bandit_dataset().observations))
    observations = np.asarray(data.observations)
    np.testing.assert_allclose(observations.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(observations.std(0), 1.0, atol=2e-3)


@pytest.mark.parametrize("make", [
    lambda: td3bc.TD3BCConfig(alpha=0.0), lambda: iql.IQLConfig(expectile=1.0), lambda: awac.AWACConfig(tau=0.0),
    lambda: bc.BCConfig(batch_size=0), lambda: iql.IQLConfig(actor_lr_decay_steps=0),
])
def test_a_bad_config_value_is_one_error_naming_the_field(make):
    with pytest.raises(ConfigError, match=r"^(alpha|expectile|tau|batch_size|actor_lr_decay_steps) must be"):
        make()


def test_resumed_run_equals_uninterrupted_run(bandit, tmp_path):
    config = td3bc.TD3BCConfig(hidden=16, batch_size=32)
    settings = runner.RunConfig(iterations=30, num_seeds=2, out=str(tmp_path / "full"), log_every=10,
                                eval_every=10, checkpoint_every=10, progress=False)
    full = runner.run(td3bc.ALGORITHM, config, settings, data=bandit)

    def evaluate_then_die(config, data, state, key):
        if int(state.step) == 20:
            raise KeyboardInterrupt  # killed after the checkpoint at 20
        return {}

    killed = dataclasses.replace(settings, out=str(tmp_path / "killed"))
    with pytest.raises(KeyboardInterrupt):
        runner.run(td3bc.ALGORITHM._replace(evaluate_host=evaluate_then_die), config, killed, data=bandit)
    resumed = runner.run(td3bc.ALGORITHM, config, killed, data=bandit, resume=True)
    for a, b in zip(jax.tree.leaves(full.state), jax.tree.leaves(resumed.state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert full.summary["critic_loss"] == resumed.summary["critic_loss"]


def test_host_evaluation_reports_return_and_score_deterministically():
    rng = np.random.default_rng(0)
    size = 64
    dataset = Dataset(rng.normal(size=(size, 3)).astype(np.float32),
                      rng.uniform(-2, 2, (size, 1)).astype(np.float32), np.zeros(size, np.float32),
                      np.zeros(size, np.float32), np.zeros(size, np.float32), rng.normal(size=(size, 3)).astype(np.float32))
    evaluation = Evaluation(lambda: gymnasium.make("Pendulum-v1", max_episode_steps=20), episodes=2,
                            normalized_score=lambda mean_return: 100.0 + mean_return)
    data = make_offline_data(dataset, max_action=2.0, evaluation=evaluation)
    config = bc.BCConfig(hidden=8)
    state = bc.init(config, data, jax.random.PRNGKey(0))
    key = np.asarray(jax.random.PRNGKey(5))
    first = bc.ALGORITHM.evaluate_host(config, data, state, key)
    assert set(first) == {"return", "normalized_score"}
    assert first["return"] < 0  # Pendulum's rewards are costs
    assert first["normalized_score"] == pytest.approx(100.0 + first["return"])
    assert bc.ALGORITHM.evaluate_host(config, data, state, key) == first
    other = bc.ALGORITHM.evaluate_host(config, data, state, np.asarray(jax.random.PRNGKey(6)))
    assert other["return"] != first["return"]
    without = make_offline_data(dataset)
    assert bc.ALGORITHM.evaluate_host(config, without, state, key) == {}
