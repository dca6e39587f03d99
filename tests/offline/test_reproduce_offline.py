"""`fluxrl reproduce offline`: verdicts against the noise floor, the report, and the protocol table."""

from dataclasses import replace

import pytest

from fluxrl.experiments import offline as experiment
from tests.offline.test_corl import assert_runs_corl


def rows_for(scores_by_seed: list[list[float]], every: int = 100) -> list[dict]:
    """metrics.csv rows of one method: seed s's normalized_score at iterations 0, every, 2 every, ..."""
    return [{"seed": str(seed), "iteration": str(i * every), "normalized_score": str(value)}
            for seed, values in enumerate(scores_by_seed) for i, value in enumerate(values)]


def study(name: str):
    return replace(next(s for s in experiment.STUDIES if s.name == name), iterations=200, eval_every=100)


def summary_of(name: str, finals: dict[str, list[float]]) -> dict:
    rows = {method: rows_for([[0.0, 0.0, value] for value in values]) for method, values in finals.items()}
    return experiment.summarise(study(name), rows)


def test_a_method_beats_bc_only_beyond_the_larger_seed_spread():
    summary = summary_of("halfcheetah-medium-replay", {"BC": [10.0, 12.0, 8.0, 10.0],
                                                      "TD3+BC": [30.0, 31.0, 29.0, 30.0],
                                                      "IQL": [11.0, 13.0, 9.0, 11.0],  # inside BC's spread
                                                      "AWAC": [2.0, 1.0, 3.0, 2.0]})
    assert summary["versus_bc"] == {"TD3+BC": "better", "IQL": "tie", "AWAC": "worse"}
    assert experiment.verdict(study("halfcheetah-medium-replay"), summary).startswith("not held")
    better = summary_of("halfcheetah-medium-replay", {"BC": [10.0] * 4, "TD3+BC": [30.0] * 4, "IQL": [20.0] * 4,
                                                     "AWAC": [25.0, 26.0, 24.0, 25.0]})
    assert experiment.verdict(study("halfcheetah-medium-replay"), better).startswith("held")


def test_maze_claim_needs_both_iql_and_awac_positive():
    finals = {"BC": [-5.0] * 4, "TD3+BC": [3.0] * 4, "IQL": [4.0, 6.0, -1.0, 3.0], "AWAC": [-2.0] * 4}
    assert experiment.verdict(study("maze2d-umaze"), summary_of("maze2d-umaze", finals)).startswith("not held")
    finals["AWAC"] = [50.0] * 4
    assert experiment.verdict(study("maze2d-umaze"), summary_of("maze2d-umaze", finals)).startswith("held")


def test_final_score_is_the_last_evaluation_and_best_is_the_best_mean():
    rows = {method: rows_for([[0.0, 40.0, 20.0], [0.0, 20.0, 10.0]]) for method in experiment.METHODS}
    final = experiment.summarise(study("halfcheetah-medium"), rows)["final"]["IQL"]
    assert final["normalized_score"]["mean"] == pytest.approx(15.0)
    assert final["normalized_score"]["seeds"] == [20.0, 10.0]
    assert final["best_mean"] == pytest.approx(30.0)


def test_report_has_the_protocol_corl_beside_ours_and_the_verdict(tmp_path):
    chosen = [study("halfcheetah-medium-replay")]
    results = {chosen[0].name: summary_of(chosen[0].name, {m: [10.0, 11.0] for m in experiment.METHODS})}
    made = {chosen[0].name: {"size": 70_000, "made": True, "seconds": 250.0}}
    text = experiment.write_report(chosen, results, tmp_path, 2, {"datasets": 250.0, chosen[0].name: 600.0},
                                   made).read_text()
    assert "| setting | CORL" in text and "35.7 ± 2.3" in text  # CORL's BC on halfcheetah-medium-replay-v2
    assert "not held (against BC: TD3+BC tie, IQL tie, AWAC tie)" in text
    assert "70,000 transitions (made in 250 s)" in text


def test_every_protocol_difference_names_its_reason():
    for setting, corl, ours, why in experiment.protocol_rows():
        assert setting and corl and ours
        assert why or ours.startswith("the same"), setting


def test_the_per_dataset_row_says_same_only_because_the_code_runs_corls_values():
    setting, corl, ours, why = experiment.protocol_rows()[-1]
    assert setting == "per-dataset settings" and why == ""
    for study in experiment.STUDIES:
        for method in study.methods:
            assert_runs_corl(experiment.ALGORITHM_NAMES[method], study.name, experiment.method_config(study, method),
                             study.config["eval_episodes"])
    assert "maze2d-umaze AWAC: awac_lambda 0.1" in ours and "halfcheetah-medium AWAC: awac_lambda 0.3333" in ours


def test_corl_scores_cover_every_method_and_dataset():
    for each in experiment.STUDIES:
        assert set(experiment.CORL_LAST[each.name]) == set(each.methods)
        assert each.name in experiment.CLAIMS
