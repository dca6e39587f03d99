"""The runner's hyperparameter axis: traced config values trained next to the seeds by one program."""

import csv
import dataclasses
import json

import jax
import numpy as np
import pytest

from fluxrl.core import runner
from fluxrl.core.config import ConfigError
from fluxrl.core.devices import SeedLayout
from tiny import TINY, TinyConfig

AXIS = {"lr": (0.1, 0.05), "noise": (0.5, 0.0)}


@pytest.fixture
def run_config(tmp_path):
    """20 iterations of 3 seeds with marks that do not line up: chunks of 5 iterations only."""
    return runner.RunConfig(iterations=20, num_seeds=3, out=str(tmp_path / "axis"), log_every=5, eval_every=5,
                            checkpoint_every=10, progress=False)


def _csv(path):
    with path.open() as file:
        return [{k: v for k, v in row.items() if k != "wall_seconds"} for row in csv.DictReader(file)]


def _same_leaves(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_each_member_of_an_axis_equals_its_config_run_alone_and_all_share_one_program(run_config, tmp_path,
                                                                                      monkeypatch):
    compiled = []
    per_seed = SeedLayout.per_seed
    monkeypatch.setattr(SeedLayout, "per_seed", lambda self, fn, num_seeded=1, donate=False: (
        compiled.append(donate), per_seed(self, fn, num_seeded, donate))[1])
    swept = runner.run(TINY, TinyConfig(), run_config, axis=AXIS)
    assert compiled.count(True) == 1, "every member and seed must run in one chunk program"
    assert sorted(swept.summary["members"]) == ["lr=0.05,noise=0.0", "lr=0.1,noise=0.5"]
    # The second member differs from the base config in both fields: a member trained with the base values, or
    # with another member's, would differ from this run alone.
    name = "lr=0.05,noise=0.0"
    alone = runner.run(TINY, TinyConfig(lr=0.05, noise=0.0), dataclasses.replace(run_config, out=str(tmp_path / name)))
    for seed in range(3):
        _same_leaves(runner.member_state(swept.state, 1, seed), runner.seed_state(alone.state, seed))
    assert _csv(tmp_path / "axis" / name / "metrics.csv") == _csv(tmp_path / name / "metrics.csv")
    stored = json.loads((tmp_path / "axis" / name / "config.json").read_text())
    assert stored["config"]["lr"] == 0.05 and stored["config"]["noise"] == 0.0
    assert swept.summary["members"][name]["per_seed"] == alone.summary["per_seed"]
    assert swept.summary["members"]["lr=0.1,noise=0.5"]["per_seed"] != alone.summary["per_seed"]


def test_a_killed_axis_run_resumes_to_the_uninterrupted_one(run_config, tmp_path):
    import tiny

    full = runner.run(TINY, TinyConfig(), run_config, axis=AXIS)
    killed = dataclasses.replace(run_config, out=str(tmp_path / "killed"))
    tiny.KILL.update(dim=3, iteration=15)  # between the checkpoints at 10 and 20, mid-row
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.run(TINY, TinyConfig(), killed, axis=AXIS)
    finally:
        tiny.KILL.clear()
    resumed = runner.run(TINY, TinyConfig(), killed, resume=True, axis=AXIS)
    _same_leaves(full.state, resumed.state)
    for name in full.summary["members"]:
        assert _csv(tmp_path / "axis" / name / "metrics.csv") == _csv(tmp_path / "killed" / name / "metrics.csv")


def test_a_field_the_program_branches_on_is_refused_as_an_axis(run_config):
    with pytest.raises(ConfigError, match=r"clip cannot be a hyperparameter axis of tiny") as error:
        runner.run(TINY, TinyConfig(), run_config, axis={"clip": (0.0, 1.0)})
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("axis, message", [
    ({"lr": (0.1, -1.0)}, r"lr must be > 0.0, got -1.0"),
    ({"lr": (0.1, 0.1)}, r"repeats a member"),
    ({"lr": (0.1, 0.2), "noise": (0.5,)}, r"same number"),
    ({"explode": (False, True)}, r"only numeric fields"),
    ({"width": (1.0, 2.0)}, r"width is not a field of TinyConfig"),
])
def test_bad_axes_are_refused_before_anything_is_written(axis, message, run_config, tmp_path):
    with pytest.raises(ConfigError, match=message):
        runner.run(TINY, TinyConfig(), run_config, axis=axis)
    assert not (tmp_path / "axis").exists()
