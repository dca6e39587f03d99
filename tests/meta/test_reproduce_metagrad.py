"""`fluxrl reproduce metagrad` end to end at a tiny size: every method runs, the report states the variance
ratios, the return differences and gamma, and the figures are written."""

import dataclasses
import json

import pytest

from fluxrl.core.config import ConfigError
from fluxrl.experiments import metagrad as experiment

TINY_STUDY = dataclasses.replace(
    experiment.STUDIES[0], config=dict(env="snake-6x6", num_envs=4, channels=4, policy_hidden=(8,),
                                       value_hidden=(8,), variance_samples=2),
    methods=("A2C fixed gamma", "1-step", "2-step", "mixed 2"), iterations=4, eval_every=2)


@pytest.mark.slow
def test_a_tiny_reproduction_writes_the_report_with_ratios_and_gamma(tmp_path, monkeypatch):
    monkeypatch.setattr(experiment, "STUDIES", (TINY_STUDY,))
    monkeypatch.setattr(experiment, "HORIZONS", (2,))
    report = experiment.reproduce(out=str(tmp_path), seeds=2, progress=False)
    assert report == tmp_path / "report.md"
    text = report.read_text()
    assert "cpu-reduced-1" in text and "K-step / uniform mix" in text and "24.9" in text
    for figure in ("snake-6x6.png", "variance.png"):
        assert (tmp_path / figure).stat().st_size > 0
    results = json.loads((tmp_path / "results.json").read_text())["studies"]["snake-6x6"]
    ratio = results["horizons"]["2"]["ratio_uniform"]
    assert ratio["ci95"][0] <= ratio["geometric_mean"] <= ratio["ci95"][1]
    assert set(results["methods"]) == set(TINY_STUDY.methods)
    assert experiment.rebuild_report(str(tmp_path)).is_file()


def test_the_command_rejects_one_seed():
    from fluxrl.commands.reproduce import ReproduceMetagrad

    with pytest.raises(ConfigError, match="seeds"):
        ReproduceMetagrad(seeds=1)
