"""Offline data of any Gymnasium environment: named with --env (raw returns, no D4RL reference), read from a
Minari dataset's own metadata (its environment and reference scores), or trained with no environment at all."""

import json
import warnings

import gymnasium
import numpy as np
import pytest

import fluxrl
from fluxrl.cli import main
from fluxrl.offline import datasets
from fluxrl.offline.common import Evaluation, hold_out, load_offline_data
from fluxrl.offline.specs import Dataset, DatasetError

RUN = ["--iterations", "4", "--log-every", "2", "--eval-every", "4", "--eval-episodes", "1", "--hidden", "16",
       "--no-progress"]


def random_action(observation, rng):
    return rng.uniform(-2, 2, 1).astype(np.float32)


def feedback(observations):
    """A linear feedback on sin(theta) and the angular velocity, [..., 3] -> [..., 1]: actions that depend on the
    state."""
    return np.clip(-3.0 * observations[..., 1:2] - 0.6 * observations[..., 2:3], -2, 2).astype(np.float32)


def controller(observation, rng):
    """The feedback with Gaussian noise (std 0.1)."""
    return np.clip(feedback(observation) + rng.normal(0, 0.1, 1), -2, 2).astype(np.float32)


def pendulum_episodes(episodes=3, seed=0, policy=random_action):
    """Pendulum-v1 episodes (200 steps each, truncated) of `policy`, as D4RL's arrays."""
    env, rng = gymnasium.make("Pendulum-v1"), np.random.default_rng(seed)
    rows = {key: [] for key in ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")}
    for episode in range(episodes):
        observation, _ = env.reset(seed=seed + episode)
        done = False
        while not done:
            action = policy(observation, rng)
            next_observation, reward, terminated, truncated, _ = env.step(action)
            for key, value in (("observations", observation), ("actions", action), ("rewards", reward),
                               ("terminals", terminated), ("timeouts", truncated),
                               ("next_observations", next_observation)):
                rows[key].append(value)
            observation, done = next_observation, terminated or truncated
    return {key: np.asarray(values, np.float32) for key, values in rows.items()}


@pytest.fixture(scope="module")
def pendulum_npz(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "pendulum-random.npz"
    np.savez(path, **pendulum_episodes())
    return path


@pytest.mark.slow
def test_data_of_an_environment_outside_d4rl_needs_and_takes_its_gymnasium_id(pendulum_npz, tmp_path, capsys):
    assert main(["train", "offline", "bc", "--dataset", str(pendulum_npz), *RUN, "--out", str(tmp_path / "x")]) == 2
    assert "cannot tell which environment" in capsys.readouterr().err
    out = tmp_path / "bc"
    assert main(["train", "offline", "bc", "--dataset", str(pendulum_npz), "--env", "Pendulum-v1", *RUN,
                 "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert -16.3 * 200 <= summary["return"] <= 0 and "normalized_score" not in summary  # raw returns only
    data = load_offline_data(str(pendulum_npz), "bc", env="Pendulum-v1")
    assert data.max_action == 2.0  # Pendulum's torque bound, read from Gymnasium


@pytest.mark.slow
def test_with_env_none_the_data_trains_with_offline_metrics_only(pendulum_npz, tmp_path):
    out = tmp_path / "none"
    assert main(["train", "offline", "td3bc", "--dataset", str(pendulum_npz), "--env", "none", *RUN,
                 "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert "return" not in summary and np.isfinite(summary["critic_loss"]) and np.isfinite(summary["actor_loss"])
    assert np.isfinite(summary["heldout_action_error"])


@pytest.mark.slow
def test_with_env_none_the_held_out_action_error_shows_what_bc_learned(tmp_path):
    path = tmp_path / "pendulum-controller.npz"
    np.savez(path, **pendulum_episodes(episodes=20, policy=controller))
    out = tmp_path / "bc"
    assert main(["train", "offline", "bc", "--dataset", str(path), "--env", "none", "--iterations", "1000",
                 "--log-every", "500", "--eval-every", "1000", "--hidden", "64", "--no-progress",
                 "--out", str(out)]) == 0
    learned = json.loads((out / "summary.json").read_text())["heldout_action_error"]
    held_out = load_offline_data(str(path), "bc", env="none").evaluation
    # Controls on the same held-out rows: always acting 0, and the controller's own actions without its noise.
    silent = held_out(lambda observations: np.zeros((len(observations), 1), np.float32), seed=0)
    noiseless = held_out(feedback, seed=0)
    assert noiseless["heldout_action_error"] < learned < 0.1 * silent["heldout_action_error"], (
        learned, silent, noiseless)


def test_the_held_out_rows_are_the_datas_last_episodes():
    data = pendulum_episodes(episodes=10)
    train, held_out = hold_out(Dataset(**{key: data[key] for key in Dataset._fields}))
    assert len(train.rewards) == 1800 and len(held_out.rewards) == 200  # whole 200-step episodes
    np.testing.assert_array_equal(np.concatenate([train.actions, held_out.actions]), data["actions"])
    cut = Dataset(**{key: data[key][:1950] for key in Dataset._fields})  # the last episode cut short
    train, held_out = hold_out(cut)
    assert len(train.rewards) == 1600 and len(held_out.rewards) == 350  # the held-out part starts at an episode
    with pytest.raises(DatasetError, match="cannot hold out"):
        hold_out(Dataset(**{key: data[key][:1] for key in Dataset._fields}))


def minari_pendulum(root, monkeypatch, policy=random_action, steps=400):
    """The directory of a Minari dataset that minari's DataCollector wrote for Pendulum-v1 with `policy`."""
    import minari

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root / "minari"))
    env, rng = minari.DataCollector(gymnasium.make("Pendulum-v1")), np.random.default_rng(0)
    observation, _ = env.reset(seed=0)
    for _ in range(steps):
        observation, _, terminated, truncated, _ = env.step(policy(observation, rng))
        if terminated or truncated:
            observation, _ = env.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # minari asks for an author and a description
        env.create_dataset("pendulum/random-v0", ref_min_score=-1500.0, ref_max_score=-150.0)
    return root / "minari" / "pendulum" / "random-v0"


def test_a_minari_dataset_of_any_environment_brings_its_environment_and_reference_scores(tmp_path, monkeypatch):
    dataset, spec = datasets.load(str(minari_pendulum(tmp_path, monkeypatch)))
    assert (spec.env_id, spec.ref_min_return, spec.ref_max_return) == ("Pendulum-v1", -1500.0, -150.0)
    assert spec.has_reference and spec.action_high == 2.0 and len(dataset.rewards) == 400
    scores = datasets.normalized_score(spec, [-1500.0, -150.0])
    np.testing.assert_allclose(scores, [0.0, 100.0])


@pytest.mark.slow
def test_a_minari_dataset_trains_from_its_path_alone_and_evaluate_repeats_the_runs_last_evaluation(
        tmp_path, monkeypatch, capsys):
    path = minari_pendulum(tmp_path, monkeypatch, policy=controller, steps=4000)
    monkeypatch.delenv("MINARI_DATASETS_PATH")  # the directory alone names the data
    summaries = {}
    for algorithm in ("bc", "td3bc"):
        assert main(["train", "offline", algorithm, "--dataset", str(path), "--iterations", "1000", "--log-every",
                     "500", "--eval-every", "1000", "--eval-episodes", "10", "--num-seeds", "2", "--hidden", "64",
                     "--no-progress", "--out", str(tmp_path / algorithm)]) == 0
        summaries[algorithm] = json.loads((tmp_path / algorithm / "summary.json").read_text())
        assert np.isfinite(summaries[algorithm]["normalized_score"])  # scored with Minari's reference returns
    # A fresh evaluation of seed 0 of the finished BC run lies within the spread of the run's last evaluations.
    trained = fluxrl.load(tmp_path / "bc")
    result = trained.evaluate(episodes=10, seed=7)
    last = summaries["bc"]["per_seed"]["return"]
    margin = 3 * np.std(result["returns"]) / np.sqrt(10)
    low, high = min(last) - margin, max(last) + margin
    assert low <= result["return"] <= high, (result["return"], last, margin)
    # Control: a policy that does nothing scores outside that band (the check can fail).
    episodes = Evaluation(trained.data.evaluation.runner.make_env, 10)
    idle = episodes(lambda observations: np.zeros((len(observations), 1), np.float32), 7)["return"]
    assert not low <= idle <= high, (idle, low, high)
    assert main(["evaluate", str(tmp_path / "bc"), "--episodes", "3"]) == 0
    assert "normalized_score" in capsys.readouterr().out
