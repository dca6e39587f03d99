"""Progress where output is no terminal: whole lines (start, at most one per interval, the end), never a cut bar."""

import io

from fluxrl.core import progress


def test_a_log_gets_whole_periodic_lines_with_the_position_speed_and_metrics(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    log = io.StringIO()
    bar = progress.Progress(True, total=400, start=0, shown=("loss",), unit="trajectories", stream=log)
    for seconds, iteration, loss in ((5.0, 100, 0.5), (31.0, 200, 0.25), (40.0, 300, 0.125)):
        now[0] = seconds  # 5 s: not yet a line; 31 s: a line; 40 s: within the interval, no line
        bar.advance(iteration, 3441.0, {"loss": loss, "other": 1.0})
    now[0] = 41.0
    bar.close()  # the end: the last state
    lines = log.getvalue().splitlines()
    assert lines[0] == "training 0/400 (0%), 0:00:00 elapsed"
    assert lines[1] == "training 200/400 (50%), 0:00:31 elapsed, 0:00:31 left  3,441 trajectories/s  loss 0.25"
    assert lines[2].startswith("training 300/400 (75%)") and lines[2].endswith("loss 0.125")
    assert len(lines) == 3 and "\r" not in log.getvalue() and "━" not in log.getvalue()


def test_disabled_progress_prints_nothing():
    log = io.StringIO()
    bar = progress.Progress(False, total=10, start=0, shown=(), unit="updates", stream=log)
    bar.advance(10, 1.0, {})
    bar.close()
    assert log.getvalue() == ""


def test_without_a_given_speed_the_line_shows_units_done_over_the_time_since_the_start(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    log = io.StringIO()
    bar = progress.Progress(True, total=1000, start=200, shown=(), unit="steps", stream=log, description="making x")
    now[0] = 40.0
    bar.advance(600)  # 400 steps in 40 s
    assert log.getvalue().splitlines()[-1].startswith("making x 600/1,000 (60%)")
    assert "10 steps/s" in log.getvalue().splitlines()[-1]
