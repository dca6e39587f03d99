"""The `fluxrl` command tree: help for every level, the documented command lines, --resume, and the demo."""

import csv
import json
import re
import shlex
from pathlib import Path

import pytest

from fluxrl.cli import main
from fluxrl.commands import demo, parse_command_line, parsing
from fluxrl.commands.gflownet_options import to_config
from fluxrl.commands.train_gflownet import resolve

REPOSITORY = Path(__file__).resolve().parents[1]
SMALL_RUN = ["--ndim", "2", "--height", "4", "--hidden", "16", "--log-every", "5", "--eval-every", "5",
             "--checkpoint-every", "5", "--no-progress"]


@pytest.mark.parametrize("args", [
    ["--help"], ["demo", "--help"], ["train", "--help"], ["train", "gflownet", "--help"],
    ["reproduce", "--help"], ["reproduce", "lggfn", "--help"], ["reproduce", "softrl", "--help"], ["reproduce", "offline", "--help"],
    ["train", "gflownet", "tb", "hypergrid", "mlp", "lggfn", "--help"],
])
def test_help_is_printed_and_nothing_is_written(args, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 0
    assert "usage: fluxrl" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_help_for_one_environment_and_algorithm_shows_only_their_options_grouped(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "gflownet", "--env", "bitseq", "--loss", "mdqn", "--help"]) == 0
    help_text = capsys.readouterr().out
    for present in ("--n ", "--k ", "--munchausen-alpha", "--munchausen-l0", "--d-model", "--iterations",
                    "--num-seeds", "environment options", "algorithm options", "network options", "run options"):
        assert present in help_text
    for absent in ("--ndim", "--height", "--lambda", "--aux-fraction", "--hidden", "--subtb-lambda"):
        assert absent not in help_text
    assert list(tmp_path.iterdir()) == []


def documented_command_lines() -> list[str]:
    """Every `fluxrl ...` command line in README.md and docs/*.md: in shell blocks and in inline code."""
    lines = []
    for path in [REPOSITORY / "README.md", *sorted((REPOSITORY / "docs").glob("*.md"))]:
        text = path.read_text()
        for block in re.findall(r"```(?:bash|sh|shell)\n(.*?)```", text, flags=re.S):
            for line in block.replace("\\\n", " ").splitlines():
                match = re.search(r"(?:^|[\s/])fluxrl\s+([^#&]*)", line)
                if match:
                    lines.append(match.group(1).strip())
        lines += [match.strip() for match in re.findall(r"`(?:\.venv/bin/)?fluxrl\s+([^`]+)`", text)]
    return lines


def test_the_documentation_has_command_lines_to_check():
    lines = documented_command_lines()
    assert len(lines) >= 12
    assert any(line.startswith("train gflownet --env bitseq") for line in lines)
    assert "demo" in lines


@pytest.mark.parametrize("line", documented_command_lines())
def test_every_documented_command_line_parses(line, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        parse_command_line(shlex.split(line))
    except parsing.HelpShown:
        pass
    assert list(tmp_path.iterdir()) == []


def test_the_old_flags_and_the_subcommands_give_the_same_config():
    old = parse_command_line(["train", "gflownet", "--explore", "lggfn", "--lambda", "0.25", "--env", "hypergrid",
                              "--ndim", "3", "--iterations", "7"])
    native = parse_command_line(["train", "gflownet", "tb", "hypergrid", "--ndim", "3", "mlp", "lggfn",
                                 "--lambda", "0.25", "--iterations", "7"])
    assert resolve(old) == resolve(native)
    algorithm, config = to_config(native.algorithm)
    assert algorithm.name == "gflownet-balance" and config.explore.lam == 0.25 and config.env.ndim == 3
    assert type(config.explore).__name__ == "LGGFNConfig"


@pytest.mark.parametrize("flags, named", [
    (["--env", "bitseq", "--loss", "mdqn", "--ndim", "3"], "--ndim"),
    (["--env", "bitseq", "--hidden", "32"], "--hidden"),
    (["--loss", "tb", "--munchausen-alpha", "0.1"], "--munchausen-alpha"),
    (["--loss", "mdqn", "--explore", "lggfn"], "explore"),
    (["tb", "--n", "12"], "--n"),
])
def test_an_option_that_does_not_apply_is_refused_by_name(flags, named, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "gflownet", *flags, "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and error.startswith("fluxrl: error:") and named in error
    assert not out.exists()


@pytest.mark.parametrize("args, words", [
    (["nothing"], "unknown command 'nothing'"),
    (["train", "online"], "unknown algorithm family 'online'"),
    (["train", "gflownet", "chess"], "unknown algorithm 'chess'"),
    (["train"], "subcommand"),
    (["train", "gflownet", "--height", "x"], "--height"),
])
def test_unknown_words_fail_with_one_line(args, words, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and words in error
    assert list(tmp_path.iterdir()) == []


def _last_iteration(out: Path) -> int:
    with (out / "metrics.csv").open() as file:
        return max(int(row["iteration"]) for row in csv.DictReader(file))


def test_resume_extends_a_run_to_the_new_iterations(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "gflownet", *SMALL_RUN, "--iterations", "10", "--out", str(out)]) == 0
    assert _last_iteration(out) == 10
    assert main(["train", "gflownet", "--resume", str(out), "--iterations", "20", "--no-progress"]) == 0
    assert _last_iteration(out) == 20
    assert json.loads((out / "config.json").read_text())["run"]["iterations"] == 20
    assert json.loads((out / "summary.json").read_text())["iterations"] == 20
    capsys.readouterr()

    # A config.json that no longer matches the checkpoint: one line, nothing trained.
    stored = json.loads((out / "config.json").read_text())
    stored["config"]["network"]["hidden"] = 32
    (out / "config.json").write_text(json.dumps(stored))
    assert main(["train", "gflownet", "--resume", str(out), "--iterations", "30", "--no-progress"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "does not match" in error
    assert _last_iteration(out) == 20


@pytest.mark.parametrize("extra", [["--lr", "0.1"], ["--env", "bitseq"], ["--out", "elsewhere"], ["tb"]])
def test_resume_with_another_option_is_refused_naming_it(extra, tmp_path, capsys):
    (tmp_path / "config.json").write_text("{}")
    assert main(["train", "gflownet", "--resume", str(tmp_path), *extra]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and extra[0] in error and "--resume" in error
    assert (tmp_path / "config.json").read_text() == "{}"


def test_resume_of_a_config_that_is_not_a_gflownet_config_fails_with_one_line(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps(
        {"algorithm": "gflownet-balance", "config": {"chess": 1}, "run": {}}))
    (tmp_path / "checkpoint.npz").write_bytes(b"")
    assert main(["train", "gflownet", "--resume", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "chess" in error


@pytest.mark.parametrize("content, words", [
    ({"config.json": json.dumps({"algorithm": "gflownet-soft-dqn", "config": {}, "run": {}})}, "another run"),
    ({"notes.txt": "mine"}, "other files"),
])
def test_the_demo_refuses_a_directory_holding_something_else(content, words, tmp_path, capsys):
    for name, text in content.items():
        (tmp_path / name).write_text(text)
    assert main(["demo", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and words in error and "--overwrite" in error
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == content


def test_the_demo_runs_twice_in_the_same_fresh_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(demo, "ITERATIONS", 20)
    for _ in range(2):
        assert main(["demo", "--no-progress"]) == 0
        assert "exact total variation to the target" in capsys.readouterr().out
    out = tmp_path / "runs" / "demo"
    assert {"config.json", "metrics.csv", "summary.json", "distribution.png"} <= {p.name for p in out.iterdir()}
    assert _last_iteration(out) == 20


def test_a_nan_during_training_stops_with_its_message_and_status_1(tmp_path, monkeypatch, capsys):
    from fluxrl.core import runner

    def diverge(*args, **kwargs):
        raise runner.NonFiniteMetricError("loss is nan at iteration 3 (seed 0).")

    monkeypatch.setattr(runner, "run", diverge)
    assert main(["train", "gflownet", "--out", str(tmp_path / "run"), "--no-progress"]) == 1
    error = capsys.readouterr().err.strip()
    assert error == "fluxrl: error: loss is nan at iteration 3 (seed 0)."
