"""`fluxrl train meta`: the issue's command line parses into the meta-gradient config, mistakes are one sentence,
and a tiny run trains and prints its summary."""

import json

import pytest

from fluxrl.commands import train_meta
from fluxrl.core.config import ConfigError
from fluxrl.meta import a2c, metagrad


def test_the_issue_command_line_builds_the_meta_gradient_config(tmp_path):
    command = train_meta.parse(["--env", "snake-6x6", "--meta-params", "gamma,lambda,entropy", "--inner-steps", "4",
                                "--mix", "uniform", "--out", str(tmp_path / "run")])
    algorithm, config = train_meta.algorithm_and_config(command)
    assert algorithm is metagrad.ALGORITHM
    assert config.meta_params == ("gamma", "lambda", "entropy") and config.inner_steps == 4 and config.mix == "uniform"
    plain = train_meta.parse(["--inner-steps", "0", "--gamma", "0.9", "--out", str(tmp_path / "plain")])
    algorithm, config = train_meta.algorithm_and_config(plain)
    assert algorithm is a2c.ALGORITHM and config.gamma == 0.9
    # One learned meta-parameter: forward mode by default, reverse with --remat; several: reverse.
    one = train_meta.algorithm_and_config(train_meta.parse(["--out", str(tmp_path / "one")]))[1]
    assert metagrad.forward_directions(one).shape == (1, len(a2c.META_PARAMS))
    remat = train_meta.algorithm_and_config(train_meta.parse(["--remat", "--out", str(tmp_path / "remat")]))[1]
    assert metagrad.forward_directions(remat) is None and metagrad.forward_directions(config_of(command)) is None


def config_of(command):
    """The config a parsed command trains."""
    return train_meta.algorithm_and_config(command)[1]


@pytest.mark.parametrize("args, message", [
    (["--inner-steps", "3"], "inner_steps must divide"),
    (["--meta-params", "gamma,discount"], "meta_params"),
    (["--mix", "harmonic"], "mix must be one of"),
    (["--inner-steps", "0", "--mix", "uniform"], "--mix needs"),
    (["--env", "snake-5x5"], "env must be one of"),
    (["--autodiff", "forward", "--remat"], "remat recomputes"),
])
def test_mistakes_stop_with_one_sentence(args, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        train_meta.parse(args + ["--out", str(tmp_path / "run")])


@pytest.mark.slow
def test_a_tiny_run_trains_and_writes_its_summary(tmp_path, capsys):
    out = tmp_path / "run"
    command = train_meta.parse(["--inner-steps", "2", "--mix", "geometric", "--num-envs", "4", "--num-steps", "3",
                                "--updates-per-iteration", "2", "--channels", "4", "--policy-hidden", "8",
                                "--value-hidden", "8", "--variance-samples", "2", "--reference-samples", "2",
                                "--iterations", "2", "--eval-every", "2", "--num-seeds", "2", "--no-progress", "--out", str(out)])
    assert train_meta.execute(command) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_steps"] == 2 * 2 * 4 * 3 and "meta_grad_variance_geometric" in summary
    assert "2-step meta-gradients (geometric mixing) on gamma" in capsys.readouterr().out


@pytest.mark.slow
def test_a_trained_meta_gradient_run_loads_acts_legally_and_plays_snake(tmp_path):
    import jax
    import numpy as np

    import fluxrl
    from fluxrl.cli import main
    from fluxrl.envs.jumanji import snake

    out = tmp_path / "run"
    assert main(["train", "meta", "--inner-steps", "2", "--num-envs", "4", "--num-steps", "3",
                 "--updates-per-iteration", "2", "--channels", "4", "--policy-hidden", "8", "--value-hidden", "8",
                 "--variance-samples", "2", "--reference-samples", "2", "--iterations", "2", "--eval-every", "2",
                 "--no-progress", "--out", str(out)]) == 0
    trained = fluxrl.load(out)
    boards, _ = snake.reset_batch(snake.Snake("snake-6x6"), jax.random.PRNGKey(0), 8)
    observation = snake.jumanji_env("snake-6x6").reset(jax.random.PRNGKey(1))[1].observation
    act = jax.jit(trained.act)
    for key in jax.random.split(jax.random.PRNGKey(2), 20):
        move = int(act(key, observation))
        assert bool(observation.action_mask[move])  # the masked policy never turns into its own neck
    moves = jax.vmap(trained.act, (0, None))(jax.random.split(jax.random.PRNGKey(3), 8), boards.grid[0])
    assert moves.shape == (8,) and moves.dtype == np.int32
    result = trained.evaluate(episodes=4, seed=0, max_steps=200)
    assert len(result["returns"]) == 4 and all(np.isfinite(result["returns"]))
    assert trained.evaluate(episodes=4, seed=0, max_steps=200) == result  # seeded: the same episodes
    assert main(["evaluate", str(out), "--episodes", "2"]) == 0
