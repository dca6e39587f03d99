"""CORL's published per-dataset configs (tinkoff-ai/CORL, configs/offline/<algo>/<env>/<dataset>.yaml) in fluxrl's
field names: what the reproductions run for BC, TD3+BC, IQL and AWAC on a D4RL-style dataset.

Every one of those files sets the defaults of fluxrl's configs (CORL's batch 256, learning rates 3e-4, discount
0.99, TD3+BC's alpha 2.5 and noise, IQL's beta 3 and expectile 0.7) except where `OVERRIDES` and `awac_lambda`
say. The reward scaling the same files switch on (`normalize_reward`) is applied where the data is loaded
(`preprocessing.CORL_REWARD_SCALED`).
"""

from __future__ import annotations

from typing import Any

from fluxrl.core.config import check_choice

ALGORITHMS = ("bc", "td3bc", "iql", "awac")

# (algorithm, dataset) -> the settings whose CORL value differs from fluxrl's default; CORL's key in brackets.
OVERRIDES: dict[tuple[str, str], dict[str, Any]] = {
    # iql_deterministic: true, tau: 0.001 (configs/offline/iql/hopper/medium_v2.yaml:11,22 and
    # medium_replay_v2.yaml:11,22); both files also set normalize_reward: true (line 18).
    ("iql", "hopper-medium"): {"deterministic_actor": True, "tau": 0.001},
    ("iql", "hopper-medium-replay"): {"deterministic_actor": True, "tau": 0.001},
    # beta: 6.0, iql_tau: 0.5 (configs/offline/iql/hopper/medium_expert_v2.yaml:3,12)
    ("iql", "hopper-medium-expert"): {"beta": 6.0, "expectile": 0.5},
}


def awac_lambda(dataset: str) -> float:
    """CORL's AWAC temperature: 0.1 on maze2d (configs/offline/awac/maze2d/*.yaml:1), 0.3333 elsewhere
    (configs/offline/awac/{halfcheetah,hopper,walker2d}/*.yaml:1), as written there."""
    return 0.1 if dataset.startswith("maze2d") else 0.3333


def eval_episodes(dataset: str) -> int:
    """CORL's evaluation episodes: 100 on maze2d, 10 on locomotion (n_episodes / n_test_episodes)."""
    return 100 if dataset.startswith("maze2d") else 10


def overrides(algorithm: str, dataset: str) -> dict[str, Any]:
    """The settings of `algorithm` on `dataset` that CORL's config sets away from fluxrl's defaults."""
    check_choice("algorithm", algorithm, ALGORITHMS)
    changes = dict(OVERRIDES.get((algorithm, dataset), {}))
    if algorithm == "awac":
        changes["awac_lambda"] = awac_lambda(dataset)
    return changes


def algorithm_module(algorithm: str):
    """fluxrl's module of one of CORL's algorithms (bc, td3bc, iql, awac)."""
    from fluxrl.offline import awac, bc, iql, td3bc

    check_choice("algorithm", algorithm, ALGORITHMS)
    return {"bc": bc, "td3bc": td3bc, "iql": iql, "awac": awac}[algorithm]


def corl_config(algorithm: str, dataset: str, **changes: Any) -> Any:
    """The config of `algorithm` (bc, td3bc, iql, awac) on the D4RL-style `dataset` as CORL's published config for
    it sets it, with `changes` on top."""
    settings = {**overrides(algorithm, dataset), **changes}
    return algorithm_module(algorithm).ALGORITHM.config_type(**settings)
