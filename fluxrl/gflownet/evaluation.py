"""Evaluation of a trained GFlowNet's forward policy, the same for every algorithm: exact distribution metrics
where the environment is enumerable, inside jit and for every seed at once (`evaluate_in_jit`); on the host, one
seed at a time, expected SHD and edge AUC for structure learning and the test-set Spearman correlation on bit
sequences (`evaluate_policy`). Names and definitions in docs/metrics.md."""

from __future__ import annotations

import jax
import numpy as np

from fluxrl.envs.gflownet.base import MAX_ENUMERABLE_STATES, is_enumerable
from fluxrl.envs.gflownet.configs import BitSequenceConfig, EnvConfig, StructureConfig
from fluxrl.gflownet import metrics as gfn_metrics
from fluxrl.gflownet.model import GFlowNetData


def terminal_distributions(env, policy, env_params) -> tuple[np.ndarray, np.ndarray]:
    """(learned, target): the exact terminal distribution of the policy's P_F and R / Z, for an enumerable env."""
    learned = gfn_metrics.exact_terminal_distribution(policy, env, env_params)
    return learned, gfn_metrics.target_distribution(env, env_params)


def make_run_data(env_config: EnvConfig) -> GFlowNetData:
    """The run's shared data: reward parameters, and the exact-evaluation tables where the env is enumerable."""
    env, env_params = env_config.build()
    exact = None
    if is_enumerable(env) and env.num_states <= MAX_ENUMERABLE_STATES:
        exact = gfn_metrics.exact_tables(env, env_params)
    return GFlowNetData(env_params, exact)


def evaluate_in_jit(env_config: EnvConfig, policy, data: GFlowNetData) -> dict[str, jax.Array]:
    """tv, l1_sum, kl and jsd of the policy's exact terminal distribution (float32), or nothing where not exact."""
    if data.exact is None:
        return {}
    return gfn_metrics.exact_distribution_metrics(policy, env_config.build()[0], data.exact)


def evaluate_policy(env_config: EnvConfig, policy, data: GFlowNetData, key: jax.Array) -> dict[str, float]:
    """Host-side metrics: expected_shd and edge_auc on structure learning, spearman on bit sequences."""
    env, env_params = env_config.build()[0], data.env_params
    if isinstance(env_config, StructureConfig):
        from fluxrl.envs.gflownet.structure_metrics import graph_metrics

        return graph_metrics(env, gfn_metrics.exact_terminal_distribution(policy, env, env_params))
    if isinstance(env_config, BitSequenceConfig):
        from fluxrl.gflownet.bitseq_eval import spearman_on_test_set

        return {"spearman": spearman_on_test_set(env_config, env, policy, env_params, key)}
    return {}
