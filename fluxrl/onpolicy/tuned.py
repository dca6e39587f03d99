"""Tuned settings per environment family, for Gaussian PPO and FPO alike: what `fluxrl train onpolicy` starts from
when only `--env` is given, and what the FPO reproduction runs.

The shared settings (rollout sizes, optimiser, discounting, networks) are the same for both methods, so a
comparison changes only the policy; FPO keeps its own `clip_eps` (0.05, official) and flow settings.
- grid world: the official grid-world PPO/FPO (akanazawa/fpo, `gridworld/main.py` lines 120-133 and
  `models/ppo.py`'s defaults): 2,048 steps per iteration, 10 epochs, lr 3e-4, gamma 0.99, GAE lambda 0.98, gradient
  norm 0.5, 64-64 ReLU networks, PPO's clip 0.2. Its 2,048 steps come from 16 environments x 128 steps here (the
  official collects whole episodes one at a time), in 8 minibatches (official 6, which does not divide 2,048).
- anything else: the config classes' own defaults.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fluxrl.onpolicy.fpo import FPOConfig
from fluxrl.onpolicy.ppo import PPOConfig

CONFIG_TYPES = {"ppo": PPOConfig, "fpo": FPOConfig}
GRIDWORLD = dict(num_envs=16, num_steps=128, epochs=10, minibatches=8, lr=3e-4, gamma=0.99, gae_lambda=0.98,
                 max_grad_norm=0.5, actor_hidden=(64, 64), critic_hidden=(64, 64), activation="relu")
# Iterations of a default run: the grid world is solved (return 20 from every start) well within 100.
ITERATIONS = {"gridworld": 100}
DEFAULT_ITERATIONS = 100


def family(env: str) -> str:
    """The environment's family: 'gridworld' for the grid-world layouts, else the name itself."""
    return "gridworld" if env.startswith("gridworld-") else env


def tuned_config(algorithm: str, env: str, **overrides: Any):
    """The config of `algorithm` (ppo or fpo) tuned for `env`, with `overrides` on top."""
    settings = dict(GRIDWORLD) if family(env) == "gridworld" else {}
    return dataclasses.replace(CONFIG_TYPES[algorithm](env=env), **{**settings, **overrides})


def tuned_iterations(env: str) -> int:
    """Iterations of a default training run on `env`."""
    return ITERATIONS.get(family(env), DEFAULT_ITERATIONS)
