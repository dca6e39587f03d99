"""Loss-guided auxiliary GFlowNets (LGGFN; Malek, Sharma, Lahlou 2025, arXiv 2505.15251).

An auxiliary GFlowNet samples part of the main model's batch and is rewarded with the main model's own training
loss on what it samples, R_aux = R + lambda * loss_main, so it goes where the main model is wrong. The shared
auxiliary mechanics (who samples what, who trains on what) are in `exploration.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp

from fluxrl.core.config import check_range
from fluxrl.gflownet.exploration import Explored, auxiliary_round
from fluxrl.gflownet.model import Learner, Model, init_model
from fluxrl.gflownet.sampler import Trajectories


@dataclass(frozen=True)
class LGGFNConfig:
    """Loss-guided exploration by an auxiliary GFlowNet."""

    # Swept, traced as one vmapped axis (`fluxrl.sweep.traced`): it enters the update only as a factor of the reward.
    TRACED_FIELDS: ClassVar[tuple[str, ...]] = ("lam",)

    aux_fraction: float = 0.5
    """Fraction of the main model's batch taken from the auxiliary GFlowNet's samples, in (0, 1)."""
    lam: float = 1.0
    """Weight lambda of the main model's loss in the auxiliary reward R + lambda * loss (> 0)."""

    def __post_init__(self):
        check_range("aux_fraction", self.aux_fraction, 0.0, 1.0, low_open=True, high_open=True)
        check_range("lam", self.lam, 0.0, low_open=True)


def lggfn_log_reward(main_loss: jax.Array, log_reward: jax.Array, lam: float) -> jax.Array:
    """log R_aux = log(R + lambda * loss_main), computed as logaddexp(log(lambda * loss), log R); the loss is
    treated as a constant (no gradient flows into the main model)."""
    loss = jax.lax.stop_gradient(main_loss)
    # log(0) = -inf is fine in logaddexp: a zero loss leaves the true reward.
    return jnp.logaddexp(jnp.log(lam * loss), log_reward)


def init(config: LGGFNConfig, learner: Learner, key: jax.Array) -> Model:
    """A fresh auxiliary GFlowNet."""
    del config
    return init_model(learner, key)


def explore(config: LGGFNConfig, learner: Learner, aux: Model, main: Model, fresh: Trajectories, key: jax.Array,
            num_other: int) -> Explored:
    """One auxiliary round rewarded by the main model's loss; the main model gets `num_other` of its samples."""
    del fresh
    reward = lambda main_loss, samples: lggfn_log_reward(main_loss, samples.log_reward, config.lam)
    return auxiliary_round(learner, aux, main, key, num_other, reward)[0]
