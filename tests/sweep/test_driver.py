"""Running a planned sweep: the table, the figures, failed trials reported, killed sweeps resumed."""

import csv

import pytest

import tiny
from fluxrl.core.runner import RunConfig
from fluxrl.sweep.driver import run_sweep
from fluxrl.sweep.executors import LocalExecutor
from fluxrl.sweep.plan import Point, plan
from fluxrl.sweep.trials import RESUMABLE, trial_state
from tiny import TINY, TinyConfig

RUN = RunConfig(iterations=20, num_seeds=2, log_every=5, eval_every=5, checkpoint_every=10, progress=False)


def _trials(out, explode_dim=None):
    """dim in {2, 3} (static: two trials) x lr in {0.1, 0.05} (traced: each trial's axis)."""
    points = [Point({"dim": str(dim), "lr": str(lr)}, TINY, TinyConfig(dim=dim, lr=lr, explode=dim == explode_dim),
                    RUN) for dim in (2, 3) for lr in (0.1, 0.05)]
    return plan(points, out)


def _sweep(trials, out, report=lambda _: None, figures=False):
    return run_sweep(trials, str(out), ["dim", "lr"], LocalExecutor(), {}, report=report, figures=figures)


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The uninterrupted sweep, with its figures."""
    out = tmp_path_factory.mktemp("whole")
    return out, _sweep(_trials(out), out, figures=True)


def _table(path):
    with (path / "sweep.csv").open() as file:
        return list(csv.DictReader(file))


def test_a_sweep_writes_one_row_per_trial_member_and_seed_and_a_figure_per_metric(whole):
    out, result = whole
    rows = _table(out)
    assert [(r["trial"], r["--dim"], r["--lr"], r["seed"]) for r in rows] == [
        (f"dim={d}", str(d), str(lr), str(s)) for d in (2, 3) for lr in (0.1, 0.05) for s in (0, 1)]
    assert {"loss", "distance", "first_weight"} <= set(rows[0])
    assert sorted(p.name for p in result.figures) == ["distance.png", "first_weight.png", "loss.png"]
    assert not result.failed and not (out / "failures.md").exists()


def test_a_failing_trial_is_reported_with_its_error_and_the_others_go_on(tmp_path):
    lines = []
    result = _sweep(_trials(tmp_path, explode_dim=2), tmp_path, report=lines.append)
    (failed,) = result.failed
    assert failed.name == "dim=2" and failed.attempts == 2, "a failure that may not repeat is retried once"
    assert failed.error == "RuntimeError: the tiny algorithm exploded on purpose"
    assert "exploded on purpose" in (tmp_path / "failures.md").read_text()
    assert {row["trial"] for row in _table(tmp_path)} == {"dim=3"}
    assert any("dim=2: FAILED after 2 attempt(s)" in line for line in lines)


def test_a_killed_sweep_resumes_to_the_same_final_table(whole, tmp_path):
    killed = _trials(tmp_path / "killed")
    tiny.KILL.update(dim=3, iteration=15)  # the second trial, after its checkpoint at 10
    try:
        with pytest.raises(KeyboardInterrupt):
            _sweep(killed, tmp_path / "killed")
    finally:
        tiny.KILL.clear()
    assert trial_state(killed[1]) == RESUMABLE
    result = _sweep(killed, tmp_path / "killed")
    assert result.kept == ["dim=2"]
    assert (tmp_path / "killed" / "sweep.csv").read_text() == (whole[0] / "sweep.csv").read_text()
