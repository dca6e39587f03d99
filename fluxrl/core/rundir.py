"""A run directory: what it holds, whether a new run may start in it, and the summary read back from it."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from fluxrl.core.checkpoint import CHECKPOINT_FILE
from fluxrl.core.config import ConfigError
from fluxrl.core.sinks import METRICS_FILE

CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"
TENSORBOARD_DIR = "tensorboard"
CORE_FILES = (CONFIG_FILE, SUMMARY_FILE, METRICS_FILE, CHECKPOINT_FILE)


def holds_run(path: Path) -> bool:
    """Whether `path` already holds a run (its config.json)."""
    return (Path(path) / CONFIG_FILE).exists()


def prepare_out_dir(out: str, overwrite: bool) -> Path:
    """Check that `out` can hold a new run, without writing anything; ConfigError if not."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory.")
    if path.is_dir() and holds_run(path) and not overwrite:
        raise ConfigError(f"--out {out} already holds a run; pass --overwrite to replace it "
                          f"or --resume {out} to continue it.")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out} is not writable.")
    return path


def clear_run(path: Path, artifacts: tuple[str, ...]) -> None:
    """Remove a previous run's files (the core ones and the algorithm's `artifacts`), nothing else."""
    for name in CORE_FILES + artifacts:
        (path / name).unlink(missing_ok=True)
    shutil.rmtree(path / TENSORBOARD_DIR, ignore_errors=True)


def read_run(directory: str) -> dict:
    """The config.json of a resumable run directory; ConfigError if it is not one."""
    path = Path(directory)
    if not (path / CONFIG_FILE).is_file() or not (path / CHECKPOINT_FILE).is_file():
        raise ConfigError(f"--resume {directory} is not a run directory with a checkpoint "
                          f"(it needs {CONFIG_FILE} and {CHECKPOINT_FILE}).")
    try:
        stored = json.loads((path / CONFIG_FILE).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"--resume {directory}: cannot read {CONFIG_FILE} ({error}).") from None
    if not isinstance(stored, dict) or not {"algorithm", "config", "run"} <= set(stored):
        raise ConfigError(f"--resume {directory}: {CONFIG_FILE} lacks the algorithm, config or run entry.")
    return stored


def logged_columns(path: Path) -> list[str]:
    """The metric columns of an existing metrics.csv."""
    header = (path / METRICS_FILE).read_text().splitlines()[0].split(",")
    return header[3:]


def summarise(path: Path, seeds: list[int], columns: list[str]) -> dict:
    """Final value of every metric per seed (its latest logged value) and the across-seed mean."""
    latest: dict[int, dict[str, float]] = {seed: {} for seed in seeds}
    with (path / METRICS_FILE).open() as file:
        for row in csv.DictReader(file):
            seed = int(row["seed"])
            for name in columns:
                if row.get(name, "") != "" and seed in latest:
                    latest[seed][name] = float(row[name])
    names = [name for name in columns if all(name in latest[s] for s in seeds)]
    summary: dict[str, Any] = {name: float(np.mean([latest[s][name] for s in seeds])) for name in names}
    summary["per_seed"] = {name: [latest[s][name] for s in seeds] for name in names}
    summary["seeds"] = list(seeds)
    return summary
