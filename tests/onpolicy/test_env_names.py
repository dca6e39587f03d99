"""On-policy environments by name: any gymnax environment with a Box action space by its id, a user's own
ControlEnv by import path; discrete action spaces and non-environments are refused with one sentence."""

import csv
import json

import numpy as np
import pytest

from fluxrl.cli import main
from fluxrl.commands import train_onpolicy
from fluxrl.core.config import ConfigError
from fluxrl.onpolicy.rollout import make_env


def test_a_gymnax_id_outside_the_registry_makes_its_environment_and_parses_on_the_command_line(tmp_path):
    env = make_env("Reacher-misc")
    assert (env.observation_size, env.action_size) == (8, 2)
    command = train_onpolicy.parse(["fpo", "--env", "Reacher-misc", "--out", str(tmp_path / "run")])
    assert command.algorithm.env == "Reacher-misc"


def test_a_users_control_env_is_made_from_its_import_path():
    env = make_env("tests.onpolicy.test_ppo:PointToTarget")
    assert type(env).__name__ == "PointToTarget" and env.action_size >= 1


class NotAnEnv:
    observation_size = 3


@pytest.mark.parametrize("name, message", [
    ("CartPole-v1", "discrete action space"),
    ("gridworld-four-walls", "a MuJoCo Playground task name or an import path"),
    (f"{__name__}:NotAnEnv", "lacks action_size, default_params, reset, step"),
    ("no_such_module:make", "cannot import"),
])
def test_what_is_no_continuous_control_environment_is_refused(name, message):
    with pytest.raises(ConfigError, match=message):
        make_env(name)


SMALL = ["--num-envs", "4", "--num-steps", "8", "--epochs", "1", "--minibatches", "1", "--iterations", "2",
         "--log-every", "1", "--eval-every", "2", "--actor-hidden", "16", "--critic-hidden", "16", "--no-progress"]


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["ppo", "fpo"])
@pytest.mark.parametrize("env_id", ["Pendulum-v1", "MountainCarContinuous-v0", "PointRobot-misc", "Reacher-misc",
                                    "Swimmer-misc"])
def test_every_continuous_gymnax_task_trains_with_ppo_and_fpo(algorithm, env_id, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "onpolicy", algorithm, "--env", env_id, *SMALL, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_steps"] == 2 * 4 * 8, summary
    assert np.isfinite(summary["actor_loss"]) and np.isfinite(summary["value_loss"]), summary


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["ppo", "fpo"])
def test_ppo_and_fpo_learn_a_users_environment_named_on_the_command_line(algorithm, tmp_path):
    out = tmp_path / algorithm
    assert main(["train", "onpolicy", algorithm, "--env", "tests.onpolicy.toy_env:PointToTarget", "--num-envs", "16",
                 "--num-steps", "50", "--epochs", "4", "--minibatches", "4", "--gamma", "0.95", "--actor-hidden", "32",
                 "32", "--critic-hidden", "32", "32", "--iterations", "20", "--log-every", "5", "--eval-every", "20",
                 "--num-seeds", "2", "--no-progress", "--out", str(out)]) == 0
    with (out / "metrics.csv").open() as file:
        rows = list(csv.DictReader(file))
    first = np.mean([float(r["episode_return"]) for r in rows if r["iteration"] == "5"])
    last = np.mean([float(r["episode_return"]) for r in rows if r["iteration"] == "20"])
    # A near-random policy scores about -25 per 50-step episode; a policy that reaches the target, above -10.
    assert last > first / 2 and last > first + 8, (first, last)
