"""The multiplicative adaptive teacher: an auxiliary GFlowNet rewarded by R * loss_main^lambda.

Like LGGFN (`lggfn.py`) it samples part of the main model's batch and follows the main model's loss, but scales
the true reward by it instead of adding to it, so it never samples where R is negligible however wrong the main
model is there. The shared auxiliary mechanics are in `exploration.py`.
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

# Floor of a loss value before its log is taken (the reference code's clamp).
LOSS_FLOOR = 1e-12


@dataclass(frozen=True)
class TeacherConfig:
    """Exploration by an auxiliary GFlowNet rewarded by R * loss_main^lambda."""

    # Swept, traced as one vmapped axis (`fluxrl.sweep.traced`): it enters the update only as an exponent.
    TRACED_FIELDS: ClassVar[tuple[str, ...]] = ("loss_exponent",)

    aux_fraction: float = 0.5
    """Fraction of the main model's batch taken from the teacher's samples, in (0, 1)."""
    loss_exponent: float = 1.0
    """Exponent lambda of the main model's loss in the teacher's reward R * loss^lambda (> 0)."""

    def __post_init__(self):
        check_range("aux_fraction", self.aux_fraction, 0.0, 1.0, low_open=True, high_open=True)
        check_range("loss_exponent", self.loss_exponent, 0.0, low_open=True)


def teacher_log_reward(main_loss: jax.Array, log_reward: jax.Array, exponent: float) -> jax.Array:
    """log R_aux = log R + lambda * log max(loss_main, 1e-12); the loss is treated as a constant."""
    loss = jax.lax.stop_gradient(main_loss)
    return log_reward + exponent * jnp.log(jnp.maximum(loss, LOSS_FLOOR))


def init(config: TeacherConfig, learner: Learner, key: jax.Array) -> Model:
    """A fresh teacher GFlowNet."""
    del config
    return init_model(learner, key)


def explore(config: TeacherConfig, learner: Learner, teacher: Model, main: Model, fresh: Trajectories,
            key: jax.Array, num_other: int) -> Explored:
    """One teacher round; the main model gets `num_other` of its samples."""
    del fresh
    reward = lambda main_loss, samples: teacher_log_reward(main_loss, samples.log_reward, config.loss_exponent)
    return auxiliary_round(learner, teacher, main, key, num_other, reward)[0]
