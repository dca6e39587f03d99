"""The FPO reproduction end to end on a tiny budget: its report's numbers are those of its runs and controls."""

import csv
import json

import numpy as np
import pytest

from fluxrl.experiments import fpo as fpo_experiment


@pytest.mark.slow
def test_tiny_grid_world_reproduction_reports_its_runs_and_its_controls(tmp_path):
    report = fpo_experiment.reproduce(str(tmp_path), seeds=2, scale=0.02, studies=("gridworld",), progress=False)
    stored = json.loads((tmp_path / "results.json").read_text())
    final = stored["studies"]["gridworld"]["final"]
    for method in ("FPO", "Gaussian PPO", "FPO, fluxrl settings"):
        with (tmp_path / "gridworld" / method.lower().replace(" ", "-") / "metrics.csv").open() as file:
            rows = [r for r in csv.DictReader(file) if r.get("saddle_two_modes", "") != ""]
        last = max(int(r["iteration"]) for r in rows)
        values = [float(r["saddle_two_modes"]) for r in rows if int(r["iteration"]) == last]
        assert final[method]["saddle_two_modes"]["mean"] == pytest.approx(np.mean(values))
    controls = stored["controls"]
    assert set(controls) == set(fpo_experiment.control_configs())
    for name, measured in controls.items():
        assert len(measured["saddle_two_modes"]["seeds"]) == 2
        assert measured["saddle_two_modes"]["mean"] == 0.0, name  # untrained or unimodal: never two modes
    text = report.read_text()
    assert text.startswith("# FPO against Gaussian PPO") and "| setting | official code" in text
    assert (tmp_path / "gridworld-start-actions.png").exists()
