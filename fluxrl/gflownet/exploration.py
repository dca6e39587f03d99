"""What the exploration strategies of the balance losses share: the batch mix, and the auxiliary GFlowNet.

A strategy supplies part of the main model's batch: a fraction `aux_fraction` of it comes from a replay buffer
(`trajectory_replay.py`) or from an auxiliary GFlowNet's samples (`lggfn.py`, `teacher.py`, `sagfn.py`); the
rest is sampled on-policy. Each strategy module has a frozen config and two functions,

    init(config, learner, key) -> strategy state
    explore(config, learner, state, main, fresh, key, num_other) -> Explored

An auxiliary GFlowNet is a second model that samples a full batch, is rewarded by what its strategy decides
(`auxiliary_round`), and trains with trajectory balance on its own samples, as in the reference code; the main
model trains on the first `num_other` of those samples, re-scored under its own parameters.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from fluxrl.core.config import ConfigError, check_range
from fluxrl.gflownet.losses import trajectory_balance
from fluxrl.gflownet.model import Learner, Model, train_step
from fluxrl.gflownet.networks import policy_of_params
from fluxrl.gflownet.policy import StateTerms
from fluxrl.gflownet.sampler import Trajectories, rescore_trajectories, sample_trajectories


class Explored(NamedTuple):
    """A strategy's share of the main model's batch and what else its iteration produced."""

    trajectories: Trajectories  # [num_other] with the main model's own outputs at every row
    terms: StateTerms  # the main model's terms on them
    sampled_final_states: Any  # final states of trajectories newly sampled by the strategy (for modes found)
    state: Any  # the strategy's new state
    metrics: dict  # extra per-iteration metrics


def other_batch_size(aux_fraction: float, batch_size: int) -> int:
    """Trajectories of the main model's batch that come from the strategy rather than on-policy sampling."""
    return int(round(aux_fraction * batch_size))


def check_batch_mix(aux_fraction: float, batch_size: int) -> None:
    """Raise ConfigError unless the mix leaves at least one strategy and one fresh on-policy trajectory."""
    check_range("aux_fraction", aux_fraction, 0.0, 1.0, low_open=True, high_open=True)
    num_other = other_batch_size(aux_fraction, batch_size)
    if not 1 <= num_other <= batch_size - 1:
        # With no fresh trajectory the main model trains only on others' samples (TB then moves log Z alone).
        raise ConfigError(f"aux_fraction must leave 1 to {batch_size - 1} of the {batch_size} trajectories to "
                          f"exploration, got aux_fraction={aux_fraction}: round(aux_fraction * batch_size) = "
                          f"{num_other}.")


def auxiliary_round(learner: Learner, aux: Model, main: Model, key: jax.Array, num_other: int,
                    aux_log_reward: Callable[[jax.Array, Trajectories], jax.Array]
                    ) -> tuple[Explored, Trajectories]:
    """The auxiliary model samples `batch_size` trajectories, is rewarded `aux_log_reward(main_loss, samples)`
    and takes one TB step; returns the main model's share (state: the new auxiliary model) and the samples."""
    aux_policy = policy_of_params(learner.network, learner.env, aux.policy)
    samples, aux_terms = sample_trajectories(aux_policy, learner.env, learner.env_params, key, learner.batch_size,
                                             learner.uniform_pb)
    # The main model's loss on the auxiliary samples, from its own re-computed log-probabilities.
    main_policy = policy_of_params(learner.network, learner.env, main.policy)
    main_view, main_terms = rescore_trajectories(main_policy, learner.env, samples, learner.uniform_pb)
    main_loss = learner.loss(main_terms, samples.log_reward, samples.length, main.log_z)
    log_reward = aux_log_reward(main_loss, samples)

    def aux_loss_of(terms, log_z):
        return trajectory_balance(terms.log_pf, terms.log_pb, log_reward, samples.length, log_z)

    new_aux, aux_loss = train_step(learner, aux, aux_loss_of, samples, aux_terms)
    take = lambda tree: jax.tree.map(lambda x: x[:num_other], tree)
    metrics = {"aux_loss": aux_loss, "aux_log_reward_mean": jnp.mean(log_reward),
               "main_loss_on_aux_mean": jnp.mean(main_loss)}
    return Explored(take(main_view), take(main_terms), samples.final_states, new_aux, metrics), samples
