"""`fluxrl reproduce cnf`: the paired verdicts against the noise floor, the report, and the protocol table."""

from dataclasses import replace

import pytest

from fluxrl.experiments import cnf as experiment
from tests.offline.test_corl import assert_runs_corl


def rows_for(scores_by_seed: list[list[float]], every: int = 100) -> list[dict]:
    """metrics.csv rows of one method: seed s's normalized_score at iterations every, 2 every, ..."""
    return [{"seed": str(seed), "iteration": str((i + 1) * every), "normalized_score": str(value)}
            for seed, values in enumerate(scores_by_seed) for i, value in enumerate(values)]


def study(name: str):
    return replace(next(s for s in experiment.STUDIES if s.name == name), iterations=200, eval_every=100)


def summary_of(name: str, finals: dict[str, list[float]]) -> dict:
    rows = {method: rows_for([[0.0, value] for value in values]) for method, values in finals.items()}
    return experiment.summarise(study(name), rows)


def test_ablations_run_only_on_their_datasets():
    for each in experiment.STUDIES:
        has_ablations = set(experiment.ABLATIONS) <= set(each.methods)
        assert has_ablations == (each.name in experiment.ABLATION_DATASETS)
        assert set(experiment.METHODS) <= set(each.methods)
        assert (experiment.LONG_FLOW in each.methods) == (each.name in experiment.LONG_FLOW_DATASETS)


def test_the_long_flow_run_differs_from_cnf_only_in_the_official_epochs():
    study = next(s for s in experiment.STUDIES if s.name == "halfcheetah-medium-replay")
    brief, long = (experiment.method_config(study, m) for m in ("CNF", experiment.LONG_FLOW))
    assert (brief.flow_epochs, long.flow_epochs) == (80, 350)  # run_flow.py:30-35: 350 epochs on replay data
    assert replace(long, flow_epochs=80) == brief


def test_the_paper_protocol_runs_the_official_cnf_budget():
    from fluxrl.offline import cnf
    from fluxrl.offline.flows import paper_epochs

    studies = experiment.studies_of(experiment.PAPER_PROTOCOL)
    assert {s.iterations for s in studies} == {200_000}  # configs/run_rl.py:18
    assert all(experiment.LONG_FLOW not in s.methods for s in studies)  # CNF itself takes the official epochs there
    for study in studies:
        config = experiment.method_config(study, "CNF")
        assert (config.flow, config.batch_size) == ("paper", 512)  # run_flow.py:10-11, run_rl.py:16
        assert cnf.flow_config(config, study.name).epochs == paper_epochs(study.name)
        assert experiment.method_config(study, "PLAS").vae.steps == 500_000  # PLAS main.py:55


def test_paired_claims_use_the_larger_seed_spread_and_the_papers_direction():
    name = "hopper-medium"
    finals = {"CNF": [50.0, 52.0, 48.0], "PLAS": [30.0, 31.0, 29.0], "AWAC": [51.0, 49.0, 50.0],
              "IQL": [40.0] * 3, "TD3+BC": [45.0] * 3, "CNF normal prior": [49.0, 50.0, 51.0],
              "CNF VAE decoder": [70.0, 71.0, 69.0]}
    pairs = summary_of(name, finals)["pairs"]
    assert pairs == {"CNF vs PLAS": "better", "CNF vs AWAC": "tie", "uniform vs normal": "tie",
                     "flow vs VAE": "worse"}
    assert experiment.verdict("CNF vs PLAS", "better") == "held"
    assert experiment.verdict("CNF vs AWAC", "tie") == "held"  # the paper claims parity with AWAC
    assert experiment.verdict("CNF vs AWAC", "worse") == "not held"
    assert experiment.verdict("uniform vs normal", "tie") == "not separated"
    assert experiment.verdict("flow vs VAE", "worse") == "not held"


def test_datasets_without_ablations_have_no_ablation_verdict():
    finals = {m: [10.0, 11.0] for m in experiment.METHODS}
    pairs = summary_of("maze2d-umaze", finals)["pairs"]
    assert set(pairs) == {"CNF vs PLAS", "CNF vs AWAC"}
    table = experiment.summary_table([study("maze2d-umaze")], {"maze2d-umaze": {"pairs": pairs}})
    assert table[-1].count("—") == 2


def test_report_has_protocol_claims_scores_and_references(tmp_path):
    chosen = [study("halfcheetah-medium-replay")]
    finals = {m: [10.0, 12.0] for m in chosen[0].methods}
    finals["CNF"] = [40.0, 42.0]
    results = {chosen[0].name: summary_of(chosen[0].name, finals)}
    seconds = {"datasets": 3.0, chosen[0].name: 600.0, "pretraining": {chosen[0].name: 120.0}}
    made = {chosen[0].name: {"size": 70_000, "made": False, "seconds": 0.1}}
    text = experiment.write_report(chosen, results, tmp_path, 2, seconds, made).read_text()
    assert "| setting | official code (path:line)" in text
    assert "| halfcheetah-medium-replay | better (held) | better (held) | better (held) | better (held) |" in text
    # the official curve's end beside ours, with its budget against ours (200 updates here)
    assert "| CNF | 41.0 ± 1.0 | 40.0, 42.0 | 41.0 | 46.0 (200k updates, 1,000× ours) |" in text
    assert "| PLAS | 11.0 ± 1.0 | 10.0, 12.0 | 11.0 | — |" in text
    assert "pre-training the flows and VAEs: halfcheetah-medium-replay 120 s" in text
    assert "Wall time: 10.1 min" in text
    assert "70,000 transitions (reused)" in text
    # the long-flow run answers the report's open question beside the brief flow and AWAC
    assert ("CNF with the flow pre-trained for the official 350 epochs 11.0 against the brief flow's 41.0 (worse) "
            "and AWAC's 11.0 (tie)") in text
    assert "(protocol `cpu-reduced-2`)" in text and "Protocol `paper` replaces" not in text


def test_every_protocol_difference_names_its_reason_and_cites_a_source():
    for setting, official, ours, why in experiment.protocol_rows():
        assert setting and official and ours
        assert why or ours.startswith("the same"), setting
        if setting not in ("data", "seeds", "official code run here", "ablations", "per-dataset settings"):
            assert ".py:" in official or "readme" in official, setting


def test_the_baselines_row_says_same_only_because_the_code_runs_corls_values_for_each_dataset():
    setting, official, ours, why = experiment.protocol_rows()[-1]
    assert setting == "per-dataset settings" and why == ""  # the report prints "same"
    for study in experiment.STUDIES:
        for method, algorithm in experiment.BASELINES.items():
            assert_runs_corl(algorithm, study.name, experiment.method_config(study, method),
                             study.config["eval_episodes"])
    # the row shows what the code runs, so a config that drifts from CORL's changes the table too
    assert "hopper-medium IQL: tau 0.001, deterministic_actor True" in ours
    assert "maze2d-umaze AWAC: awac_lambda 0.1" in ours


def test_the_protocol_table_states_the_normal_prior_latent_and_plas_states_as_the_code_runs_them():
    rows = {setting: ours for setting, _, ours, _ in experiment.protocol_rows()}
    assert "atanh" in rows["ablations"]
    study = next(s for s in experiment.STUDIES if s.name == "hopper-medium")
    assert experiment.method_config(study, "CNF normal prior").prior == "normal"
    assert "raw states" in rows["PLAS"] and experiment.PLAS_NORMALIZE_STATES is False


def test_unknown_protocol_is_refused_before_anything_runs(tmp_path):
    from fluxrl.core.config import ConfigError

    with pytest.raises(ConfigError, match="protocol"):
        experiment.reproduce(str(tmp_path / "out"), protocol="cpu-reduced-1")  # superseded
    assert not (tmp_path / "out").exists()
