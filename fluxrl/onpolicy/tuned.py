"""Tuned settings per environment family, for Gaussian PPO and FPO: what `fluxrl train onpolicy` starts from when
only `--env` is given, and what the FPO reproduction runs.

The shared settings (rollout sizes, epochs, discounting, critic) are the same for both methods on a task, so a
comparison changes the policy and its own few settings only:
- grid world: the official grid-world PPO/FPO (akanazawa/fpo, `gridworld/main.py` lines 120-133 and
  `models/ppo.py`'s defaults): 2,048 steps per iteration, 10 epochs, lr 3e-4, gamma 0.99, GAE lambda 0.98, gradient
  norm 0.5, 64-64 ReLU networks, PPO's clip 0.2. Its 2,048 steps come from 16 environments x 128 steps here (the
  official collects whole episodes one at a time), in 8 minibatches (official 6, which does not divide 2,048).
  FPO keeps its clip 0.05: with 0.2 two of four seeds lost the saddle split.
- pendulum (gymnax Pendulum-v1): the config classes' defaults, rejax's tuned Pendulum PPO. FPO diverged (NaN) at
  its lr 1e-3 with clip 0.2 and learned slowly with clip 0.05; lr 3e-4, clip 0.1 and a 64-64 velocity network
  reached about -190 in two of three seeds at 1M steps.
- dmc-* (MuJoCo Playground DM Control): 64 envs x 125 steps, 8 minibatches, PPO's entropy bonus 0.01 (measured to
  reach about 800 on CartpoleBalance and ReacherEasy in 1M steps); FPO at lr 3e-4 and clip 0.1, as on Pendulum,
  with the official 4 x 32 velocity network.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fluxrl.onpolicy.fpo import FPOConfig
from fluxrl.onpolicy.ppo import PPOConfig

CONFIG_TYPES = {"ppo": PPOConfig, "fpo": FPOConfig}
SHARED = {
    "gridworld": dict(num_envs=16, num_steps=128, epochs=10, minibatches=8, lr=3e-4, gamma=0.99, gae_lambda=0.98,
                      max_grad_norm=0.5, actor_hidden=(64, 64), critic_hidden=(64, 64), activation="relu"),
    "dmc": dict(num_envs=64, num_steps=125, minibatches=8),
}
OWN = {
    ("ppo", "dmc"): dict(entropy_coef=0.01),
    ("fpo", "pendulum"): dict(lr=3e-4, clip_eps=0.1, actor_hidden=(64, 64)),
    ("fpo", "dmc"): dict(lr=3e-4, clip_eps=0.1),
}
# Iterations of a default run (1M env steps outside the grid world, which is solved well within 100).
ITERATIONS = {"gridworld": 100, "pendulum": 100, "dmc": 125}
DEFAULT_ITERATIONS = 100


def family(env: str) -> str:
    """The environment's family: 'gridworld', 'dmc' (Playground), or the name itself."""
    for prefix in ("gridworld", "dmc"):
        if env.startswith(prefix + "-"):
            return prefix
    return env


def tuned_config(algorithm: str, env: str, **overrides: Any):
    """The config of `algorithm` (ppo or fpo) tuned for `env`, with `overrides` on top."""
    settings = {**SHARED.get(family(env), {}), **OWN.get((algorithm, family(env)), {}), **overrides}
    return dataclasses.replace(CONFIG_TYPES[algorithm](env=env), **settings)


def tuned_iterations(env: str) -> int:
    """Iterations of a default training run on `env`."""
    return ITERATIONS.get(family(env), DEFAULT_ITERATIONS)
