"""`fluxrl sweep gflownet`: its command line, its plan, and Ray as an optional extra."""

import csv
import json
import re
import sys
from pathlib import Path

import pytest

import fluxrl
from fluxrl.cli import main
from fluxrl.commands import sweep
from fluxrl.core.config import ConfigError
from fluxrl.sweep.executors import RAY_INSTALL

TINY = "--env hypergrid --ndim 2 --height 5 --hidden 16 --batch-size 8 --iterations 4 --no-progress".split()


@pytest.fixture
def no_ray(monkeypatch):
    """Ray as if it were not installed."""
    monkeypatch.setitem(sys.modules, "ray", None)


def test_the_ray_executor_without_ray_says_in_one_line_how_to_install_it(no_ray):
    for args in (["--executor", "ray"], ["gflownet", "--sweep", "lr=1e-3,3e-4", "--executor=ray"]):
        with pytest.raises(ConfigError) as error:
            sweep.parse(args)
        assert str(error.value) == RAY_INSTALL and "pip install" in RAY_INSTALL and "\n" not in RAY_INSTALL


def test_nothing_outside_the_sweep_package_imports_ray():
    root = Path(fluxrl.__file__).parent
    importers = [path.relative_to(root) for path in root.rglob("*.py")
                 if re.search(r"^\s*(import ray|from ray)", path.read_text(), re.MULTILINE)]
    assert importers and all(path.parts[0] == "sweep" for path in importers)


def test_traced_options_form_an_axis_and_the_loss_separate_trials(no_ray, tmp_path):
    command = sweep.parse(["gflownet", *TINY, "--out", str(tmp_path / "s"), "--sweep", "lr=1e-3,3e-4",
                           "--sweep", "loss=tb,db", "--num-seeds", "2"])
    plan = sweep.plan_of(command)
    assert [(t.name, t.axis, t.config.loss, t.run.num_seeds) for t in plan.trials] == [
        ("loss=tb", {"lr": (1e-3, 3e-4)}, "tb", 2), ("loss=db", {"lr": (1e-3, 3e-4)}, "db", 2)]
    assert plan.swept == ["lr", "loss"] and plan.out == str(tmp_path / "s")
    assert not (tmp_path / "s").exists(), "parsing writes nothing"


@pytest.mark.parametrize("args, message", [
    (["--sweep", "lr=1e-3,-1"], r"lr=-1: lr must be > 0.0, got -1.0"),
    (["--sweep", "lr"], r"must be NAME=V1,V2"),
    ([], r"nothing to sweep"),
    (["--sweep", "lr=1e-3", "--resume", "somewhere"], r"--resume continues a sweep with its stored options"),
])
def test_mistakes_are_one_line_naming_the_combination(args, message, tmp_path):
    with pytest.raises(ConfigError, match=message) as error:
        sweep.parse(["gflownet", *TINY, "--out", str(tmp_path), *args])
    assert "\n" not in str(error.value)


def test_a_directory_holding_a_sweep_needs_resume_or_overwrite(tmp_path):
    (tmp_path / "sweep.json").write_text('{"spec": {"sweep": ["lr=1e-3,3e-4"], "train": []}, "trials": []}')
    args = ["gflownet", *TINY, "--out", str(tmp_path), "--sweep", "lr=1e-3,3e-4"]
    with pytest.raises(ConfigError, match="already holds a sweep; pass --resume"):
        sweep.parse(args)
    assert sweep.parse([*args, "--overwrite"]).train[-1] == "--overwrite"
    assert sweep.plan_of(sweep.parse(["gflownet", "--resume", str(tmp_path)])).spec["train"] == []


@pytest.mark.slow
def test_a_gflownet_sweep_trains_every_combination_and_resumes_to_the_same_table(tmp_path):
    args = ["gflownet", *TINY, "--out", str(tmp_path / "s"), "--sweep", "lr=1e-3,3e-4", "--sweep", "loss=tb,db"]
    assert sweep.execute(sweep.parse(args)) == 0
    table = (tmp_path / "s" / "sweep.csv").read_text()
    assert table.splitlines()[0].startswith("trial,--lr,--loss,seed,") and len(table.splitlines()) == 1 + 4
    assert (tmp_path / "s" / "figures" / "tv.png").is_file()
    (tmp_path / "s" / "sweep.csv").unlink()
    assert sweep.execute(sweep.parse(["gflownet", "--resume", str(tmp_path / "s")])) == 0  # every trial kept
    assert (tmp_path / "s" / "sweep.csv").read_text() == table


def test_fluxrl_sweep_with_the_ray_executor_and_no_ray_exits_2_with_one_line(no_ray, capsys):
    from fluxrl.commands import run_command_line

    assert run_command_line(["sweep", "--executor", "ray"]) == 2
    assert capsys.readouterr().err == f"fluxrl: error: {RAY_INSTALL}\n"


@pytest.mark.slow
def test_a_trial_with_an_axis_continues_with_train_gflownet_resume(tmp_path, capsys):
    assert sweep.execute(sweep.parse(["gflownet", *TINY, "--out", str(tmp_path / "s"), "--sweep", "lr=1e-3,3e-4"])) == 0
    trial, = (tmp_path / "s" / "trials").iterdir()  # learning rates are one trial: a vmapped axis
    members = json.loads((trial / "config.json").read_text())["axis"]["members"]
    assert main(["train", "gflownet", "--resume", str(trial), "--iterations", "8", "--no-progress"]) == 0
    for member in members:
        with (trial / member / "metrics.csv").open() as file:
            assert max(int(row["iteration"]) for row in csv.DictReader(file)) == 8
    assert "members:" in capsys.readouterr().out
