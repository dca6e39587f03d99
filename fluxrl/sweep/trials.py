"""One trial of a sweep, run where an executor puts it: finished trials are kept, killed ones resume.

A trial's directory tells how far it got: summary.json (written last) means finished, checkpoint.npz means
resumable, anything else means starting over. So a sweep run again after a kill, or a trial retried after a
crash, continues from the trial's last checkpoint and ends where an uninterrupted run ends.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from fluxrl.core.checkpoint import CHECKPOINT_FILE
from fluxrl.core.rundir import SUMMARY_FILE
from fluxrl.sweep.plan import Trial
from fluxrl.sweep.report import swept_column

FINISHED, RESUMABLE, NEW = "finished", "resumable", "new"


def trial_state(trial: Trial) -> str:
    """finished, resumable (a checkpoint to continue from) or new."""
    out = Path(trial.run.out)
    if (out / SUMMARY_FILE).is_file():
        return FINISHED
    return RESUMABLE if (out / CHECKPOINT_FILE).is_file() else NEW


def run_trial(trial: Trial) -> dict:
    """Train a trial (or continue it, or read it back when finished); its summary (see `runner.run`)."""
    from fluxrl.core.runner import run

    state = trial_state(trial)
    out = Path(trial.run.out)
    if state != FINISHED:
        # A new trial may find the files of a try killed before its first checkpoint: they are replaced.
        run_config = dataclasses.replace(trial.run, overwrite=True)
        command, data = None, None
        if trial.command is not None:  # a command line's trial: stored with the run, its family reads the data
            command = dataclasses.replace(trial.command, run=run_config)
            data = trial.data(command, trial.algorithm, trial.config) if trial.data is not None else None
        run(trial.algorithm, trial.config, run_config, data=data, resume=state == RESUMABLE, axis=trial.axis,
            command=command)
    return json.loads((out / SUMMARY_FILE).read_text())


def per_seed_rows(trial: Trial, summary: dict) -> list[dict]:
    """One row per member and seed: the trial's name, the member's swept values, the seed, every final metric."""
    members = [summary["members"][name] for name in trial.members] if trial.axis else [summary]
    rows = []
    for values, member in zip(trial.points, members):
        for index, seed in enumerate(member["seeds"]):
            metrics = {name: per_seed[index] for name, per_seed in member["per_seed"].items()}
            swept = {swept_column(name): value for name, value in values.items()}
            rows.append({"trial": trial.name, **swept, "seed": seed, **metrics})
    return rows
