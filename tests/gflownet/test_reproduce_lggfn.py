"""`fluxrl reproduce lggfn`: the protocols differ only in the parentheses policy, which the protocol table names."""

from fluxrl.experiments import lggfn
from fluxrl.gflownet.networks import MLPConfig, TransformerConfig, resolve_network


def network_of(protocol: str, study_name: str, method: str = "LGGFN"):
    """The network a method of a study trains (its environment's default where the config names none)."""
    study = next(s for s in lggfn.studies_of(protocol) if s.name == study_name)
    config = lggfn.study_config(study, method)[1]
    return resolve_network(config.env, config.network)


def test_the_paper_protocol_runs_the_official_gpt2_sizes_on_parentheses_and_nothing_else_changes():
    for method in ("TB", "LGGFN"):
        assert network_of("paper", "parentheses", method) == TransformerConfig(d_model=128, heads=4, layers=2)
        assert network_of("cpu-reduced-2", "parentheses", method) == MLPConfig(hidden=256, layers=2)
    for reduced, paper in zip(lggfn.studies_of("cpu-reduced-2"), lggfn.studies_of("paper")):
        if reduced.name != "parentheses":
            assert reduced == paper


def test_the_protocol_table_names_the_policy_of_each_protocol():
    rows = {setting: (official, ours) for setting, official, ours, _ in lggfn.PROTOCOL_TABLE}
    official, ours = rows["parentheses policy"]
    assert "GPT-2" in official and "dropout 0.1" in official
    assert "cpu-reduced-2: MLP 256 x 2" in ours and "`--protocol paper`" in ours and "128 wide" in ours
