"""On-policy environments by name: any gymnax environment with a Box action space by its id, a user's own
ControlEnv by import path; discrete action spaces and non-environments are refused with one sentence."""

import pytest

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
    ("gridworld-four-walls", "a gymnax id or an import path"),
    (f"{__name__}:NotAnEnv", "lacks action_size, default_params, reset, step"),
    ("no_such_module:make", "cannot import"),
])
def test_what_is_no_continuous_control_environment_is_refused(name, message):
    with pytest.raises(ConfigError, match=message):
        make_env(name)
