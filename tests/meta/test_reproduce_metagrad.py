"""`fluxrl reproduce metagrad` end to end at a tiny size: the figures it reports are the ones recomputed from the
runs' own logged diagnostics, paired by seed."""

import csv
import dataclasses
import json

import numpy as np
import pytest

from fluxrl.core.config import ConfigError
from fluxrl.experiments import metagrad as experiment

TINY_STUDY = dataclasses.replace(
    experiment.STUDIES[0], config=dict(env="snake-6x6", num_envs=4, channels=4, policy_hidden=(8,),
                                       value_hidden=(8,), variance_samples=3, reference_samples=4),
    methods=("A2C fixed gamma", "1-step", "2-step", "mixed 2"), iterations=4, eval_every=2)


def logged(path, metric):
    """{seed: {iteration: value}} of one metric, read straight from a run's metrics.csv."""
    table = {}
    with path.open() as file:
        for row in csv.DictReader(file):
            if row.get(metric, "") != "":
                table.setdefault(int(row["seed"]), {})[int(row["iteration"])] = float(row[metric])
    return table


@pytest.fixture(scope="module")
def tiny_reproduction(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce-metagrad")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(experiment, "STUDIES", (TINY_STUDY,))
        patch.setattr(experiment, "HORIZONS", (2,))
        report = experiment.reproduce(out=str(out), seeds=2, progress=False)
        results = json.loads((out / "results.json").read_text())["studies"]["snake-6x6"]
        rebuilt = experiment.rebuild_report(str(out))
    return out, report, results, rebuilt


@pytest.mark.slow
def test_the_logged_relative_variance_is_the_trace_over_the_squared_mean(tiny_reproduction):
    out = tiny_reproduction[0]
    run = out / "snake-6x6" / "mixed-2" / "metrics.csv"
    for estimator in experiment.ESTIMATORS:
        trace = logged(run, f"meta_grad_variance_{estimator}")
        norm = logged(run, f"meta_grad_mean_sq_norm_{estimator}")
        relative = logged(run, f"meta_grad_relative_variance_{estimator}")
        assert relative and set(relative) == set(trace)
        for seed, values in relative.items():
            for iteration, value in values.items():
                assert value == pytest.approx(trace[seed][iteration] / norm[seed][iteration], rel=1e-3)


@pytest.mark.slow
def test_the_reported_variance_ratios_are_paired_by_seed_from_the_logged_values(tiny_reproduction):
    out, _, results, _ = tiny_reproduction
    entry = results["horizons"]["2"]
    for quantity, key in (("relative_variance", "relative_ratio"), ("variance", "raw_ratio")):
        per_seed = {}
        for run in ("2-step", "mixed-2"):
            top = logged(out / "snake-6x6" / run / "metrics.csv", f"meta_grad_{quantity}_kstep")
            bottom = logged(out / "snake-6x6" / run / "metrics.csv", f"meta_grad_{quantity}_uniform")
            for seed in top:
                later = sorted(top[seed])[1:]  # the evaluations after the one at the start
                per_seed.setdefault(seed, []).extend(np.log(top[seed][i] / bottom[seed][i]) for i in later)
        logs = np.array([np.mean(per_seed[seed]) for seed in sorted(per_seed)])
        ratio = entry[f"{key}_uniform"]
        assert ratio["per_seed"] == pytest.approx(np.exp(logs).tolist(), rel=1e-6)
        assert ratio["geometric_mean"] == pytest.approx(float(np.exp(logs.mean())), rel=1e-6)
        assert ratio["ci95"][0] <= ratio["geometric_mean"] <= ratio["ci95"][1]


@pytest.mark.slow
def test_the_return_difference_is_per_seed_mixed_minus_k_step(tiny_reproduction):
    _, _, results, _ = tiny_reproduction
    methods, difference = results["methods"], results["horizons"]["2"]["return_difference"]
    expected = np.array(methods["mixed 2"]["return"]) - np.array(methods["2-step"]["return"])
    assert difference["per_seed"] == pytest.approx(expected.tolist())
    assert difference["mean"] == pytest.approx(float(expected.mean()))
    assert difference["ci95"][0] <= difference["mean"] <= difference["ci95"][1]


@pytest.mark.slow
def test_meta_parameters_are_compared_after_equal_meta_update_counts(tiny_reproduction):
    out, _, results, _ = tiny_reproduction
    counts = results["meta_update_counts"]
    # The 2-step runs make 4 meta-updates per iteration, the 1-step run 8: both read at the same count.
    assert counts[-1] == 4 * TINY_STUDY.iterations
    checked = 0
    for method, run, per_iteration in (("1-step", "1-step", 8), ("2-step", "2-step", 4)):
        gamma = logged(out / "snake-6x6" / run / "metrics.csv", "gamma")
        for count in counts:
            if count % per_iteration == 0 and count // per_iteration in gamma[0]:
                seeds = sorted(gamma)
                assert results["methods"][method]["at_meta_updates"]["gamma"][str(count)] == pytest.approx(
                    [gamma[seed][count // per_iteration] for seed in seeds])
                checked += 1
    assert checked >= 4  # both methods, at two counts or more each


@pytest.mark.slow
def test_the_report_and_figures_are_written_and_rebuilt(tiny_reproduction):
    out, report, results, rebuilt = tiny_reproduction
    assert report == out / "report.md" and rebuilt.is_file()
    ratio = results["horizons"]["2"]["relative_ratio_uniform"]["geometric_mean"]
    assert f"{ratio:.2f}x" in report.read_text()
    for figure in ("snake-6x6.png", "variance.png", "meta-parameters.png"):
        assert (out / figure).stat().st_size > 0
    assert set(results["methods"]) == set(TINY_STUDY.methods)


def test_the_command_rejects_one_seed():
    from fluxrl.commands.reproduce import ReproduceMetagrad

    with pytest.raises(ConfigError, match="seeds"):
        ReproduceMetagrad(seeds=1)
