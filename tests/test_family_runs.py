"""Every family's `fluxrl train` goes through one path to the runner (`fluxrl.commands.families.train`): each gets
TensorBoard and a stored command (what resume and sweeps rebuild), with nothing family-specific in between."""

import json

import pytest

from fluxrl.cli import main
from fluxrl.commands import families

RUN = ["--iterations", "2", "--log-every", "1", "--eval-every", "2", "--no-progress", "--tensorboard"]
ARGS = {
    "gflownet": ["tb", "hypergrid", "mlp", "--ndim", "2", "--height", "4", "--hidden", "16", "--batch-size", "4"],
    "offline": None,  # filled with a made dataset
    "onpolicy": ["ppo", "--env", "pendulum", "--num-envs", "4", "--num-steps", "8", "--epochs", "1",
                 "--minibatches", "1"],
    "meta": ["--inner-steps", "1", "--num-envs", "4", "--num-steps", "3", "--updates-per-iteration", "1",
             "--channels", "4", "--policy-hidden", "8", "--value-hidden", "8", "--variance-samples", "2",
             "--reference-samples", "2"],
}


def family_args(family, tmp_path):
    if family != "offline":
        return ARGS[family]
    data = tmp_path / "data"
    assert main(["data", "make", "maze2d-umaze", "--size", "1000", "--data-dir", str(data), "--no-progress"]) == 0
    return ["bc", "--dataset", "maze2d-umaze", "--data-dir", str(data), "--eval-episodes", "1", "--hidden", "16"]


def test_every_family_is_registered_with_its_train_command():
    assert set(families.families()) == {"gflownet", "offline", "onpolicy", "meta"}
    for name, family in families.families().items():
        assert family.name == name and family.command_type.__name__.startswith("Train")


# Offline by default (the GFlowNet command line has its own tests, tests/test_cli_commands.py); the rest with -m slow.
@pytest.mark.parametrize("family", [pytest.param("gflownet", marks=pytest.mark.slow), "offline",
                                    pytest.param("onpolicy", marks=pytest.mark.slow),
                                    pytest.param("meta", marks=pytest.mark.slow)])
def test_each_family_writes_tensorboard_and_stores_its_command(family, tmp_path):
    out = tmp_path / "run"
    assert main(["train", family, *family_args(family, tmp_path), *RUN, "--out", str(out)]) == 0
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    stored = json.loads((out / "config.json").read_text())
    assert "command" in stored and stored["run"]["tensorboard"] is True

