"""`fluxrl.load(run)`: a trained GFlowNet samples objects with their log-rewards and log-probabilities, a trained
policy acts on raw observations as its evaluation does, and what cannot be loaded fails with one sentence."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fluxrl
from fluxrl.cli import main
from fluxrl.core.config import ConfigError


@pytest.fixture(scope="module")
def parentheses_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "parentheses"
    assert main(["train", "gflownet", "--env", "parentheses", "--max-tokens", "6", "--unique-mode-samples", "0",
                 "--hidden", "32", "--iterations", "150", "--num-seeds", "2", "--no-progress",
                 "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_a_trained_gflownet_samples_objects_with_their_log_reward_and_log_probability(parentheses_run, tmp_path):
    trained = fluxrl.load(parentheses_run, seed_index=1)
    samples = jax.jit(trained.sample, static_argnums=1)(jax.random.PRNGKey(0), 4000)
    env, params = trained.env, trained.env_params
    assert samples.objects.tokens.shape == (4000, 6) and bool(jnp.all(samples.objects.terminated))
    np.testing.assert_allclose(samples.log_reward, jax.vmap(env.log_reward, (None, 0))(params, samples.objects))
    # Each sequence has one trajectory, so log P_F(trajectory) is the object's log-probability: the sample
    # frequencies of the commonest objects match exp(log_prob).
    codes = np.asarray(samples.objects.tokens + 1) @ (3 ** np.arange(6))
    values, counts = np.unique(codes, return_counts=True)
    for code in values[np.argsort(counts)[-3:]]:
        where = codes == code
        frequency = where.mean()
        assert abs(frequency - float(np.exp(samples.log_prob[where][0]))) < 4 * np.sqrt(frequency / 4000), code
    # the loaded policy is the one that trained: its mean log-reward is the run's last logged one for this seed
    logged = json.loads((parentheses_run / "summary.json").read_text())["per_seed"]["log_reward_mean"][1]
    assert abs(float(jnp.mean(samples.log_reward)) - logged) < 0.03
    other = fluxrl.load(parentheses_run, seed_index=0).sample(jax.random.PRNGKey(0), 10)
    assert not np.array_equal(other.log_prob, samples.log_prob[:10])


@pytest.mark.slow
def test_samples_are_written_as_csv_and_npz(parentheses_run, tmp_path, capsys):
    for name in ("samples.csv", "samples.npz"):
        assert main(["sample", str(parentheses_run), "--n", "50", "--out", str(tmp_path / name)]) == 0
    header = (tmp_path / "samples.csv").read_text().splitlines()[0].split(",")
    assert header[:2] == ["object_tokens_0", "object_tokens_1"] and header[-2:] == ["log_reward", "log_prob"]
    with np.load(tmp_path / "samples.npz") as saved:
        assert saved["object_tokens"].shape == (50, 6) and saved["log_prob"].shape == (50,)
    assert main(["sample", str(parentheses_run), "--n", "5", "--out", str(tmp_path / "samples.txt")]) == 2
    assert "must end in .csv or .npz" in capsys.readouterr().err
    assert not (tmp_path / "samples.txt").exists()


@pytest.mark.slow
def test_a_trained_ppo_policy_acts_on_raw_observations(tmp_path):
    out = tmp_path / "ppo"
    assert main(["train", "onpolicy", "ppo", "--env", "pendulum", "--num-envs", "4", "--num-steps", "8",
                 "--epochs", "1", "--minibatches", "1", "--iterations", "2", "--eval-every", "2", "--no-progress",
                 "--out", str(out)]) == 0
    trained = fluxrl.load(out)
    observations = jnp.ones((5, 3))
    actions = jax.jit(trained.act)(jax.random.PRNGKey(0), observations)
    assert actions.shape == (5, 1) and bool(jnp.all(jnp.abs(actions) <= 1.0))
    assert trained.act(jax.random.PRNGKey(0), observations[0]).shape == (1,)
    many = jax.vmap(trained.act, (0, None))(jax.random.split(jax.random.PRNGKey(1), 7), observations[0])
    assert many.shape == (7, 1) and len(np.unique(np.asarray(many))) == 7  # one stochastic action per key
    with pytest.raises(ConfigError, match="seed_index"):
        fluxrl.load(out, seed_index=3)
    # Pendulum-v1's episodes last 200 steps, each reward in [-16.3, 0]
    result = trained.evaluate(episodes=3, seed=0, max_steps=300)
    assert len(result["returns"]) == 3 and all(-16.3 * 200 <= r < 0 for r in result["returns"])
    assert trained.evaluate(episodes=3, seed=0, max_steps=300) == result  # seeded: the same episodes
    assert main(["evaluate", str(out), "--episodes", "2"]) == 0


def test_a_directory_that_is_no_run_fails_with_one_sentence(tmp_path):
    with pytest.raises(ConfigError, match="not a run directory"):
        fluxrl.load(tmp_path)


def total_variation(p, q):
    return 0.5 * float(np.abs(np.asarray(p) - np.asarray(q)).sum())


@pytest.mark.slow
def test_fluxrl_sample_draws_from_the_trained_policys_exact_distribution(tmp_path):
    out, n = tmp_path / "hypergrid", 20_000
    assert main(["train", "gflownet", "--env", "hypergrid", "--height", "6", "--hidden", "32", "--iterations", "40",
                 "--log-every", "20", "--no-progress", "--out", str(out)]) == 0
    assert main(["sample", str(out), "--n", str(n), "--out", str(tmp_path / "samples.npz")]) == 0
    trained = fluxrl.load(out)
    env, params = trained.env, trained.env_params
    with np.load(tmp_path / "samples.npz") as saved:
        coords = saved["object_coords"]
    from fluxrl.envs.gflownet.hypergrid import HypergridState
    from fluxrl.gflownet.metrics import exact_terminal_distribution, target_distribution

    states = HypergridState(jnp.asarray(coords), jnp.ones(n, bool))
    indices = np.asarray(jax.vmap(env.state_index)(states))
    exact = exact_terminal_distribution(trained.policy, env, params)
    empirical = np.bincount(indices, minlength=len(exact)) / n
    # The noise floor: the 99.9th percentile of the distance of n exact draws from the exact distribution.
    rng = np.random.default_rng(0)
    floor = np.quantile([total_variation(rng.multinomial(n, exact / exact.sum()) / n, exact) for _ in range(1000)],
                        0.999)
    assert total_variation(empirical, exact) <= floor, (total_variation(empirical, exact), floor)
    # Control: after 40 iterations the sampler is not yet the target, and the measure tells them apart.
    assert total_variation(empirical, target_distribution(env, params)) > 3 * floor
