"""Evaluation of a trained GFlowNet's forward policy, the same for every algorithm: exact distribution metrics
where the environment is enumerable, inside jit and for every seed at once (`evaluate_in_jit`); on the host, one
seed at a time, expected SHD and edge AUC for structure learning, the test-set Spearman correlation on bit
sequences and `unique_modes_sampled` on balanced parentheses (`evaluate_policy`). Names and definitions in
docs/metrics.md."""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np

from fluxrl.envs.gflownet.base import MAX_ENUMERABLE_STATES, is_enumerable
from fluxrl.envs.gflownet.configs import BitSequenceConfig, EnvConfig, ParenthesesConfig, StructureConfig
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


# Trajectories per sampling call of `unique_modes_sampled`: bounds the memory of one rollout's buffers.
SAMPLE_CHUNK = 1000


@eqx.filter_jit
def _draw_modes(policy, env, env_params, key: jax.Array, size: int) -> tuple[jax.Array, jax.Array]:
    """Final tokens [size, max_tokens] of `size` on-policy samples, and whether each is a paper mode."""
    from fluxrl.gflownet.sampler import sample_trajectories

    final = sample_trajectories(policy, env, env_params, key, size, uniform_pb=True)[0].final_states
    return final.tokens, jax.vmap(env.is_full_mode)(final)


def unique_modes_sampled(env, policy, env_params, key: jax.Array, num_samples: int) -> int:
    """Distinct paper modes (`env.is_full_mode`: balanced sequences filling every slot) among `num_samples`
    objects sampled from the policy without exploration noise (the LGGFN paper's parentheses metric)."""
    codes = []
    for index, start in enumerate(range(0, num_samples, SAMPLE_CHUNK)):
        tokens, is_mode = _draw_modes(policy, env, env_params, jax.random.fold_in(key, index),
                                      min(SAMPLE_CHUNK, num_samples - start))
        tokens, is_mode = np.asarray(tokens), np.asarray(is_mode)
        # A full sequence of 0/1 tokens is its own binary code (max_tokens <= 36 bits fits in int64).
        codes.append(tokens[is_mode].astype(np.int64) @ (np.int64(1) << np.arange(env.max_tokens, dtype=np.int64)))
    return int(np.unique(np.concatenate(codes)).size)


def evaluate_policy(env_config: EnvConfig, policy, data: GFlowNetData, key: jax.Array) -> dict[str, float]:
    """Host-side metrics: expected_shd and edge_auc on structure learning, spearman on bit sequences,
    unique_modes_sampled on balanced parentheses."""
    env, env_params = env_config.build()[0], data.env_params
    if isinstance(env_config, StructureConfig):
        from fluxrl.envs.gflownet.structure_metrics import graph_metrics

        return graph_metrics(env, gfn_metrics.exact_terminal_distribution(policy, env, env_params))
    if isinstance(env_config, BitSequenceConfig):
        from fluxrl.gflownet.bitseq_eval import spearman_on_test_set

        return {"spearman": spearman_on_test_set(env_config, env, policy, env_params, key)}
    if isinstance(env_config, ParenthesesConfig) and env_config.unique_mode_samples > 0:
        return {"unique_modes_sampled": float(unique_modes_sampled(env, policy, env_params, key,
                                                                   env_config.unique_mode_samples))}
    return {}
