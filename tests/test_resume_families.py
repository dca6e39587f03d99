"""`fluxrl train {offline,onpolicy,meta} --resume DIR`: a run killed after a checkpoint and resumed from its own
stored command ends exactly where the uninterrupted run ends (one algorithm per family)."""

import json

import numpy as np
import pytest

from fluxrl.cli import main
from fluxrl.core import checkpoint

RUN = ["--iterations", "4", "--log-every", "2", "--eval-every", "4", "--checkpoint-every", "2", "--num-seeds", "2",
       "--no-progress"]


def train_killed_after_first_checkpoint(args, monkeypatch):
    """Run `args`, killed (KeyboardInterrupt) right after the checkpoint at iteration 2 is written."""
    save = checkpoint.save

    def save_then_die(directory, state, iteration, extras=None):
        path = save(directory, state, iteration, extras)
        if iteration == 2:
            raise KeyboardInterrupt
        return path

    with monkeypatch.context() as patch:
        patch.setattr(checkpoint, "save", save_then_die)
        with pytest.raises(KeyboardInterrupt):
            main(args)


def final_rows(out):
    """The metrics.csv rows of the last iteration, without their wall-clock times."""
    lines = (out / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    rows = [{k: v for k, v in zip(header, line.split(",")) if k != "wall_seconds"} for line in lines[1:]]
    last = max(int(row["iteration"]) for row in rows)
    return sorted((row for row in rows if int(row["iteration"]) == last), key=lambda row: row["seed"])


def assert_resume_equals_uninterrupted(family, args, tmp_path, monkeypatch):
    full, killed = tmp_path / "full", tmp_path / "killed"
    assert main(["train", family, *args, *RUN, "--out", str(full)]) == 0
    train_killed_after_first_checkpoint(["train", family, *args, *RUN, "--out", str(killed)], monkeypatch)
    assert main(["train", family, "--resume", str(killed), "--no-progress"]) == 0
    assert final_rows(full) == final_rows(killed)
    full_state, killed_state = (np.load(out / checkpoint.CHECKPOINT_FILE) for out in (full, killed))
    assert sorted(full_state.files) == sorted(killed_state.files)
    for name in full_state.files:
        np.testing.assert_array_equal(full_state[name], killed_state[name], err_msg=name)
    stored = json.loads((killed / "config.json").read_text())
    assert stored["run"]["iterations"] == 4 and "command" in stored


# On-policy and meta are slow (three compiled runs each, 30 s to a minute): the runner's own resume tests run by
# default (tests/core), and so does the offline family's here.
@pytest.mark.slow
def test_onpolicy_ppo_resumes_to_the_uninterrupted_run(tmp_path, monkeypatch):
    assert_resume_equals_uninterrupted("onpolicy", ["ppo", "--env", "pendulum", "--num-envs", "4",
                                                    "--num-steps", "8", "--epochs", "1", "--minibatches", "1"],
                                       tmp_path, monkeypatch)


@pytest.mark.slow
def test_meta_gradient_run_resumes_to_the_uninterrupted_run(tmp_path, monkeypatch):
    assert_resume_equals_uninterrupted("meta", ["--inner-steps", "2", "--num-envs", "4", "--num-steps", "3",
                                                "--updates-per-iteration", "2", "--channels", "4", "--policy-hidden",
                                                "8", "--value-hidden", "8", "--variance-samples", "2",
                                                "--reference-samples", "2"], tmp_path, monkeypatch)


def test_offline_td3bc_resumes_to_the_uninterrupted_run(tmp_path, monkeypatch):
    data = tmp_path / "data"
    assert main(["data", "make", "maze2d-umaze", "--size", "2000", "--data-dir", str(data), "--no-progress"]) == 0
    assert_resume_equals_uninterrupted("offline", ["td3bc", "--dataset", "maze2d-umaze", "--data-dir", str(data),
                                                   "--eval-episodes", "1", "--hidden", "16"], tmp_path, monkeypatch)


def test_resume_of_a_run_of_another_family_is_one_clear_error(tmp_path, capsys):
    from fluxrl.commands import train_onpolicy
    from fluxrl.core.config import to_typed

    out = tmp_path / "ppo"
    out.mkdir()
    command = train_onpolicy.defaults("ppo", "pendulum")
    (out / "config.json").write_text(json.dumps({"algorithm": "ppo", "config": {}, "run": {},
                                                 "command": to_typed(command)}))
    (out / checkpoint.CHECKPOINT_FILE).write_bytes(b"")
    assert main(["train", "meta", "--resume", str(out)]) == 2
    assert "not one of `fluxrl train meta`" in capsys.readouterr().err
    assert main(["train", "offline", "--resume", str(tmp_path / "nothing")]) == 2
