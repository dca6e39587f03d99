"""`fluxrl sweep FAMILY` for every family: combinations parsed by the family's own `train` command, trained
through the same path, their trials resumable with `fluxrl train FAMILY --resume`."""

import csv
import json

import numpy as np
import pytest

from fluxrl.cli import main
from fluxrl.commands import sweep
from fluxrl.core.config import ConfigError

RUN = ["--iterations", "4", "--log-every", "2", "--eval-every", "4", "--checkpoint-every", "2", "--no-progress"]
ONPOLICY = ["ppo", "--env", "pendulum", "--num-envs", "4", "--num-steps", "8", "--epochs", "1", "--minibatches", "1"]
META = ["--inner-steps", "2", "--num-envs", "4", "--num-steps", "3", "--updates-per-iteration", "2", "--channels",
        "4", "--policy-hidden", "8", "--value-hidden", "8", "--variance-samples", "2", "--reference-samples", "2"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A Pendulum-shaped offline dataset: 400 random transitions, trained with no environment."""
    rng = np.random.default_rng(0)
    observations = rng.normal(size=(400, 3)).astype(np.float32)
    arrays = dict(observations=observations, actions=rng.uniform(-1, 1, (400, 1)).astype(np.float32),
                  rewards=rng.normal(size=400).astype(np.float32), terminals=np.zeros(400, np.float32),
                  timeouts=(np.arange(400) % 100 == 99).astype(np.float32),
                  next_observations=np.roll(observations, -1, axis=0))
    path = tmp_path_factory.mktemp("data") / "random.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("family, args", [
    ("offline", ["bc", "--env", "none", "--hidden", "16"]),
    ("onpolicy", ONPOLICY),
    ("meta", META),
])
def test_each_family_plans_its_combinations_from_its_own_command(family, args, dataset, tmp_path):
    extra = ["--dataset", str(dataset)] if family == "offline" else []
    swept = ["--sweep", "inner-steps=1,2"] if family == "meta" else ["--sweep", "lr=1e-3,3e-4", "--sweep",
                                                                     "batch-size=8,16" if family == "offline"
                                                                     else "num-envs=4,8"]
    plan = sweep.plan_of(sweep.parse([family, *args, *extra, *RUN, "--out", str(tmp_path / "s"), *swept]))
    if family == "meta":  # A2C's settings are what meta-gradients tune: no traced fields, a trial per value
        assert [(t.config.inner_steps, t.axis) for t in plan.trials] == [(1, None), (2, None)]
    else:  # the learning rates one axis of each trial, the batch or environment count a trial each
        assert [t.axis for t in plan.trials] == [{"lr": (1e-3, 3e-4)}] * 2 and len({t.name for t in plan.trials}) == 2
    assert not (tmp_path / "s").exists(), "planning writes nothing"


def test_a_family_option_misspelt_in_a_sweep_is_its_train_commands_error(dataset, tmp_path):
    with pytest.raises(ConfigError, match="lr=-1"):
        sweep.parse(["offline", "bc", "--dataset", str(dataset), "--env", "none", *RUN, "--out", str(tmp_path),
                     "--sweep", "lr=1e-3,-1"])


def test_an_offline_sweep_trains_every_trial_and_a_trial_resumes_as_a_run(dataset, tmp_path):
    out = tmp_path / "s"
    args = ["offline", "bc", "--dataset", str(dataset), "--env", "none", "--hidden", "16", *RUN, "--out", str(out),
            "--sweep", "lr=1e-3,3e-4", "--sweep", "batch-size=8,16"]
    assert sweep.execute(sweep.parse(args)) == 0
    with (out / "sweep.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [(row["--batch-size"], row["--lr"]) for row in rows] == [("8", "1e-3"), ("8", "3e-4"), ("16", "1e-3"),
                                                                     ("16", "3e-4")]
    metrics = [name for name in rows[0] if not name.startswith("--") and name not in ("trial", "seed")]
    assert metrics and all(np.isfinite(float(row[name])) for row in rows for name in metrics)
    trial = out / "trials" / "batch-size=8"  # the two learning rates: one axis of this run
    stored = json.loads((trial / "config.json").read_text())
    assert stored["config"]["batch_size"] == 8 and stored["axis"]["values"] == {"lr": [1e-3, 3e-4]}
    assert main(["train", "offline", "--resume", str(trial), "--iterations", "6", "--no-progress"]) == 0
    for member in stored["axis"]["members"]:
        with (trial / member / "metrics.csv").open() as file:
            assert max(int(row["iteration"]) for row in csv.DictReader(file)) == 6
