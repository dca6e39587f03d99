"""The reproductions run CORL's published per-dataset configs: the values of every setting read off the configs
they build, against CORL's files (tinkoff-ai/CORL, configs/offline/<algo>/<env>/<dataset>.yaml) transcribed here."""

import pytest

from fluxrl.experiments import cnf as cnf_experiment
from fluxrl.experiments import offline as offline_experiment
from fluxrl.offline import corl
from fluxrl.offline.preprocessing import CORL_REWARD_SCALED

# CORL's values, by algorithm and dataset, under CORL's own keys.
_IQL = {"batch_size": 256, "actor_lr": 3e-4, "qf_lr": 3e-4, "vf_lr": 3e-4, "discount": 0.99, "beta": 3.0,
        "iql_tau": 0.7, "tau": 0.005, "iql_deterministic": False, "normalize_reward": False, "n_episodes": 10}
_AWAC = {"awac_lambda": 0.3333, "batch_size": 256, "gamma": 0.99, "hidden_dim": 256, "learning_rate": 0.0003,
         "tau": 0.005, "n_test_episodes": 10}
_TD3BC = {"alpha": 2.5, "batch_size": 256, "discount": 0.99, "noise_clip": 0.5, "policy_freq": 2,
          "policy_noise": 0.2, "tau": 0.005, "normalize_reward": False, "n_episodes": 10}
_BC = {"batch_size": 256, "n_episodes": 10}
CORL = {
    ("iql", "hopper-medium"): {**_IQL, "iql_deterministic": True, "tau": 0.001, "normalize_reward": True},
    ("iql", "hopper-medium-replay"): {**_IQL, "iql_deterministic": True, "tau": 0.001, "normalize_reward": True},
    ("iql", "hopper-medium-expert"): {**_IQL, "beta": 6.0, "iql_tau": 0.5},
    ("iql", "halfcheetah-medium"): _IQL,
    ("iql", "halfcheetah-medium-replay"): _IQL,
    ("iql", "maze2d-umaze"): {**_IQL, "n_episodes": 100},
    ("awac", "hopper-medium"): _AWAC,
    ("awac", "halfcheetah-medium"): _AWAC,
    ("awac", "halfcheetah-medium-replay"): _AWAC,
    ("awac", "maze2d-umaze"): {**_AWAC, "awac_lambda": 0.1, "n_test_episodes": 100},
    ("td3bc", "hopper-medium"): _TD3BC,
    ("td3bc", "halfcheetah-medium"): _TD3BC,
    ("td3bc", "halfcheetah-medium-replay"): _TD3BC,
    ("td3bc", "maze2d-umaze"): {**_TD3BC, "n_episodes": 100},
    ("bc", "halfcheetah-medium"): _BC,
    ("bc", "halfcheetah-medium-replay"): _BC,
    ("bc", "maze2d-umaze"): {**_BC, "n_episodes": 100},
}
# CORL's key -> fluxrl's config field, per algorithm (the episode count and reward scaling are checked apart).
FIELDS = {
    "iql": {"batch_size": "batch_size", "actor_lr": "actor_lr", "qf_lr": "critic_lr", "vf_lr": "value_lr",
            "discount": "discount", "beta": "beta", "iql_tau": "expectile", "tau": "tau",
            "iql_deterministic": "deterministic_actor"},
    "awac": {"awac_lambda": "awac_lambda", "batch_size": "batch_size", "gamma": "discount", "hidden_dim": "hidden",
             "learning_rate": "lr", "tau": "tau"},
    "td3bc": {"alpha": "alpha", "batch_size": "batch_size", "discount": "discount", "noise_clip": "noise_clip",
              "policy_freq": "policy_delay", "policy_noise": "policy_noise", "tau": "tau"},
    "bc": {"batch_size": "batch_size"},
}
EPISODES = {"iql": "n_episodes", "awac": "n_test_episodes", "td3bc": "n_episodes", "bc": "n_episodes"}


def assert_runs_corl(algorithm: str, dataset: str, config, eval_episodes: int) -> None:
    expected = CORL[(algorithm, dataset)]
    for key, field in FIELDS[algorithm].items():
        value = getattr(config, field)
        assert value == expected[key] and type(value) is type(expected[key]), (algorithm, dataset, key, value)
    assert eval_episodes == expected[EPISODES[algorithm]], (algorithm, dataset)
    if "normalize_reward" in expected:
        scaled = dataset in CORL_REWARD_SCALED.get(algorithm, ())
        assert scaled == expected["normalize_reward"], (algorithm, dataset)


@pytest.mark.parametrize("experiment", [cnf_experiment, offline_experiment], ids=["cnf", "offline"])
def test_every_baseline_in_the_reproductions_runs_corls_values_for_its_dataset(experiment):
    names = {"BC": "bc", "TD3+BC": "td3bc", "IQL": "iql", "AWAC": "awac"}
    checked = 0
    for study in experiment.STUDIES:
        for method in study.methods:
            if method in names:
                config = experiment.method_config(study, method)
                assert_runs_corl(names[method], study.config["dataset"], config, study.config["eval_episodes"])
                checked += 1
    assert checked >= 9


def test_iql_on_hopper_medium_runs_corls_deterministic_actor_and_slow_target():
    study = next(s for s in cnf_experiment.STUDIES if s.name == "hopper-medium")
    config = cnf_experiment.method_config(study, "IQL")
    assert config.deterministic_actor is True and config.tau == 0.001
    assert config.actor_lr_decay_steps == study.iterations  # CORL's cosine over the whole run


@pytest.mark.parametrize("dataset", ["hopper-medium-replay", "hopper-medium-expert"])
def test_corl_configs_outside_the_reproductions_hold_corls_values(dataset):
    assert_runs_corl("iql", dataset, corl.corl_config("iql", dataset), corl.eval_episodes(dataset))


def test_cnf_takes_awacs_temperature_for_the_dataset():
    for study in cnf_experiment.STUDIES:
        for method in ("CNF", "AWAC"):
            assert cnf_experiment.method_config(study, method).awac_lambda == corl.awac_lambda(study.name)


@pytest.mark.parametrize("method, normalised", [("PLAS", False), ("CNF", True)])
def test_the_reproduction_gives_plas_raw_states_as_the_official_code_and_cnf_normalised_ones(method, normalised,
                                                                                              monkeypatch):
    from fluxrl.offline import common

    seen = {}

    def record(name, algorithm, data_dir=None, eval_episodes=10, normalize_states=True):
        seen["normalize_states"] = normalize_states
        raise RuntimeError("recorded")

    monkeypatch.setattr(common, "load_offline_data", record)
    study = next(s for s in cnf_experiment.STUDIES if s.name == "hopper-medium")
    with pytest.raises(RuntimeError, match="recorded"):
        cnf_experiment.study_config(study, method)
    assert seen["normalize_states"] is normalised
