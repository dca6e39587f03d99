"""Run a planned sweep with an executor, resuming what a killed run left, and write its table and figures.

    OUT/sweep.json      what was swept (to resume it, or to refuse mixing two sweeps in one directory)
    OUT/trials/NAME/    one fluxrl run per trial (members of its axis in subdirectories)
    OUT/sweep.csv       one row per trial, member and seed: swept values, every final metric
    OUT/figures/*.png   one figure per metric
    OUT/failures.md     the failed trials, their errors and tracebacks (only when some failed)
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any, Callable, NamedTuple

from fluxrl.core.checkpoint import atomic_write_json
from fluxrl.core.config import ConfigError
from fluxrl.core.rundir import prepare_out_dir
from fluxrl.sweep.executors import Outcome, Task
from fluxrl.sweep.plan import TRIALS_DIR, Trial
from fluxrl.sweep.report import FAILURES_FILE, FIGURES_DIR, TABLE_FILE, plot_metrics, write_failures, write_table
from fluxrl.sweep.trials import FINISHED, per_seed_rows, run_trial, trial_state

SPEC_FILE = "sweep.json"


class SweepResult(NamedTuple):
    """Where the table is, its rows, the figures, the failed trials' outcomes and the trials kept as finished."""

    table: Path
    rows: list[dict]
    figures: list[Path]
    failed: list[Outcome]
    kept: list[str]


def stored_spec(out: str) -> dict:
    """The spec a sweep directory was started with; ConfigError if it holds no sweep."""
    path = Path(out) / SPEC_FILE
    if not path.is_file():
        raise ConfigError(f"--resume {out} holds no sweep (no {SPEC_FILE}).")
    return json.loads(path.read_text())["spec"]


def check_out(out: str, spec: dict, resume: bool, overwrite: bool) -> None:
    """ConfigError unless `out` may take this sweep: new, resumed with the same spec, or to be replaced
    (`overwrite`); writes nothing."""
    path = Path(out)
    if (path / SPEC_FILE).is_file():
        if resume and stored_spec(out) != spec:
            raise ConfigError(f"--out {out} holds a different sweep; resume it with its own options, or pass "
                              f"--overwrite to replace it.")
        if not resume and not overwrite:
            raise ConfigError(f"--out {out} already holds a sweep; pass --resume {out} to continue it or "
                              f"--overwrite to replace it.")
    elif resume:
        raise ConfigError(f"--resume {out} holds no sweep (no {SPEC_FILE}).")
    if not resume:
        prepare_out_dir(out, overwrite)


def clear(out: str) -> None:
    """Remove an earlier sweep's own files from `out` (its trials, table, figures, report, spec), nothing else."""
    path = Path(out)
    if not (path / SPEC_FILE).is_file():
        return
    for name in (TRIALS_DIR, FIGURES_DIR):
        shutil.rmtree(path / name, ignore_errors=True)
    for name in (TABLE_FILE, FAILURES_FILE, SPEC_FILE):
        (path / name).unlink(missing_ok=True)


def run_sweep(trials: list[Trial], out: str, swept: list[str], executor: Any, spec: dict,
              report: Callable[[str], None] = print, figures: bool = True) -> SweepResult:
    """Run every trial not finished yet (see `trials.py`), then write the table, the figures (unless told not
    to) and the failures; `report` gets a line per finished trial."""
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path / SPEC_FILE, {"spec": spec, "trials": [trial.name for trial in trials]})
    kept = [trial.name for trial in trials if trial_state(trial) == FINISHED]
    if executor.remote:  # workers elsewhere start in other directories; parallel progress bars would interleave
        trials = [dataclasses.replace(t, run=dataclasses.replace(t.run, out=str(Path(t.run.out).resolve()),
                                                                 progress=False)) for t in trials]
    report(f"sweep: {len(trials)} trial(s), {len(kept)} already finished; results in {out}/")

    def done(outcome: Outcome) -> None:
        status = "done" if outcome.ok else f"FAILED after {outcome.attempts} attempt(s): {outcome.error}"
        report(f"  {outcome.name}: {status}")

    outcomes = executor.run([Task(trial.name, run_trial, (trial,)) for trial in trials], keep_going=True,
                            on_done=done)
    rows = [row for trial, outcome in zip(trials, outcomes) if outcome.ok
            for row in per_seed_rows(trial, outcome.result)]
    metrics = write_table(path / TABLE_FILE, rows, swept)
    drawn = plot_metrics(path, rows, swept, metrics) if rows and figures else []
    failed = [outcome for outcome in outcomes if not outcome.ok]
    write_failures(path / FAILURES_FILE, [(o.name, o.error, o.details, o.attempts) for o in failed])
    return SweepResult(path / TABLE_FILE, rows, drawn, failed, kept)
