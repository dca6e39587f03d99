"""The command line: bad input gets one line on stderr, exit status 2, and nothing written."""

import json

import pytest

from fluxrl.cli import main


@pytest.mark.parametrize("flags, words", [
    (["--height", "1"], "height"),
    (["--loss", "foo"], "loss must be one of tb, db, subtb"),
    (["--batch-size", "0"], "batch_size"),
    (["--env", "chess"], "env must be one of"),
    (["--epsilon", "1.5"], "epsilon"),
    (["--explore", "curiosity"], "explore must be one of"),
    (["--explore", "epsilon"], "epsilon"),
    (["--explore", "lggfn", "--lambda", "0"], "lambda"),
    (["--explore", "lggfn", "--aux-fraction", "0.97"], "aux_fraction"),
    (["--explore", "replay", "--replay-capacity", "8"], "capacity"),
    (["--loss", "tb", "--leaf-coefficient", "3"], "--leaf-coefficient"),
    (["--explore", "lggfn", "--aux-fraction", "1"], "aux_fraction"),
    (["--env", "structure", "--num-nodes", "0"], "num_nodes"),
    (["--env", "parentheses", "--max-tokens", "1"], "max_tokens"),
])
def test_bad_options_fail_with_one_line_and_write_nothing(flags, words, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "gflownet", *flags, "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and words in error
    assert not out.exists()


def test_unwritable_out_fails_cleanly(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert main(["train", "gflownet", "--out", str(blocker / "run")]) == 2
    assert "not writable" in capsys.readouterr().err
    assert blocker.read_text() == "not a directory"


def test_resume_of_a_directory_that_is_not_a_run_fails_cleanly(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["train", "gflownet", "--resume", str(tmp_path)]) == 2
    assert "is not a run directory" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_an_existing_run_is_not_overwritten_without_asking(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")
    assert main(["train", "gflownet", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "config.json").read_text() == "{}"


def test_train_writes_the_documented_files_and_summary_names(tmp_path, capsys):
    out = tmp_path / "run"
    status = main(["train", "gflownet", "--ndim", "2", "--height", "5", "--hidden", "16", "--iterations", "20",
                   "--log-every", "10", "--eval-every", "10", "--num-seeds", "2", "--out", str(out),
                   "--no-progress"])
    assert status == 0
    assert {p.name for p in out.iterdir()} >= {"config.json", "metrics.csv", "summary.json", "distribution.png"}
    summary = json.loads((out / "summary.json").read_text())
    for name in ("tv", "l1_sum", "kl", "jsd", "modes_found", "loss", "iterations_per_second", "wall_seconds"):
        assert name in summary
    assert "tv" in capsys.readouterr().out


def test_lambda_option_reaches_the_config(tmp_path):
    from fluxrl.commands import parse_command_line
    from fluxrl.commands.train_gflownet import resolve
    from fluxrl.gflownet.lggfn import LGGFNConfig

    command = parse_command_line(["train", "gflownet", "--explore", "lggfn", "--lambda", "0.25", "--ndim", "2",
                                  "--out", str(tmp_path / "run")])
    algorithm, config, _ = resolve(command)
    assert algorithm.name == "gflownet-balance" and config.explore == LGGFNConfig(aux_fraction=0.5, lam=0.25)


@pytest.mark.parametrize("args, words", [
    (["reproduce", "nothing"], "unknown reproduction"),
    (["reproduce", "lggfn", "--seeds", "0"], "seeds"),
    (["reproduce", "lggfn", "--scale", "0"], "scale"),
    (["reproduce", "lggfn", "--studies", "chess"], "studies must be among"),
])
def test_bad_reproduce_options_fail_with_one_line(args, words, tmp_path, capsys):
    out = tmp_path / "rep"
    extra = ["--out", str(out)] if args[1:2] == ["lggfn"] else []
    assert main([*args, *extra]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and words in error
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lggfn", "softrl"])
def test_reproduction_runs_end_to_end_and_writes_its_report(name, tmp_path, capsys):
    out = tmp_path / name
    assert main(["reproduce", name, "--out", str(out), "--seeds", "2", "--scale", "0.005", "--no-progress"]) == 0
    report = (out / "report.md").read_text()
    assert "cpu-reduced-2" in report and "Paper" in report
    results = json.loads((out / "results.json").read_text())
    for study in results["studies"].values():
        assert all(len(metric["seeds"]) == 2 for method in study["final"].values() for metric in method.values())
    assert all((out / f"{study}.png").exists() for study in results["studies"])
