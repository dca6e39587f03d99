"""Settings per environment family, for Gaussian PPO and FPO: what `fluxrl train onpolicy` starts from when only
`--env` is given, and what the FPO reproduction runs.

The shared settings (rollout sizes, epochs, discounting, critic) are the same for both methods on a task, so a
comparison changes the policy and its own few settings only:
- gridworld: the official grid-world protocol (akanazawa/fpo `gridworld/`; `OFFICIAL_GRIDWORLD` names each value's
  source): 2,052 steps per iteration as 12 envs x 171 steps (official: whole episodes until 2,048 steps), 10 epochs of
  6 minibatches, Adam 3e-4 (eps 1e-8) with each network's gradient clipped to norm 0.5, gamma 0.99, GAE lambda 0.98
  with no bootstrap at the time limit, advantages standardised over the batch, the critic's loss the plain mean
  squared error (value_coef 2 on fluxrl's 0.5 mean), 64-64 ReLU networks with PyTorch's default init, raw observations,
  raw actions that the environment clips, clip 0.2. The Gaussian has the fixed covariance diag(0.5) and PPO's KL early
  stop at 0.02; FPO n_mc 50 pairs with t uniform, the plain velocity loss, per-pair differences clamped to +-3 then
  averaged, the raw scalar t as input, no output scaling.
- pendulum (gymnax Pendulum-v1, not a task of the paper): the config classes' defaults, rejax's tuned Pendulum PPO;
  FPO keeps its own official (Playground) settings, lr 3e-4 and clip 0.05. Nothing here was tuned on the result.
- dmc-* (MuJoCo Playground DM Control): the official Playground settings of both methods (`OFFICIAL_PLAYGROUND`) at a
  reduced batch: 64 envs x 480 steps per update (official 2,048 x 480), advantages recomputed in every minibatch over
  chunks of 30 steps, 16 epochs of 32 minibatches, reward x 10, gamma 0.995, a zeroed TD error at the time limit, no
  gradient clipping; FPO clip 0.05, Gaussian PPO the paper's tuned lr 3e-4, clip 0.1, entropy 0.01, state-dependent
  std. The critic is 64-64 instead of the official 5 x 256 (CPU cost: docs/onpolicy.md).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from fluxrl.onpolicy.fpo import CFM_ONLY, FPOConfig
from fluxrl.onpolicy.ppo import PPOConfig

CONFIG_TYPES = {"ppo": PPOConfig, "fpo": FPOConfig}
# The official grid world, each value with its source (gridworld/main.py, models/*.py; PyTorch).
OFFICIAL_GRIDWORLD = dict(
    num_envs=12, num_steps=171,  # 2,048 steps of whole episodes per batch (main.py:121); 6 minibatches must divide
    epochs=10, minibatches=6,  # n_updates_per_iteration 10 (main.py:124), num_minibatches 6 (models/ppo.py:438)
    lr=3e-4, gamma=0.99, gae_lambda=0.98,  # main.py:123-125, models/ppo.py:437
    max_grad_norm=0.5, grad_clip="per-network",  # models/ppo.py:441; one clip_grad_norm_ per network (fpo.py:229, 235)
    adam_eps=1e-8,  # torch.optim.Adam's default
    clip_eps=0.2,  # main.py:126
    value_coef=2.0,  # nn.MSELoss (models/fpo.py:223) is twice fluxrl's 0.5 mean squared error
    advantage_normalization="batch",  # once over the batch (models/fpo.py:166)
    time_limit="terminate",  # the last step of every episode has delta = r - V (models/ppo.py:210-212)
    normalize_observations=False, squash="none",  # raw observations; the env clips raw actions (gridworld.py:341)
    actor_hidden=(64, 64), critic_hidden=(64, 64), activation="relu", network_init="torch",  # models/network.py
)
OFFICIAL_GRIDWORLD_OWN = {
    # fixed covariance diag(0.5) (models/ppo.py:57-58), target_kl 0.02 (models/ppo.py:440), a plain linear mean head
    "ppo": dict(fixed_std=0.5 ** 0.5, target_kl=0.02, mean_output_scale=1.0),
    # N = 50 (main.py:131), t ~ U(0, 1) (diffusion_policy.py:103), velocity loss (:136), clamped differences
    # (models/fpo.py:212-216), raw scalar t (diffusion_policy.py:133), no output scale
    "fpo": dict(n_mc=50, t_sampling="uniform", output_mode="u", pair_average="clamped", time_embed_dim=0,
                output_scale=1.0),
}
# The official Playground settings (playground/src/flow_policy/fpo.py:19-59; PPO: mujoco_playground's
# dm_control_suite_params with the notebook's tuned lr and clip), at 64 instead of 2,048 envs.
OFFICIAL_PLAYGROUND = dict(
    num_envs=64, num_steps=480, gae_chunk=30, epochs=16, minibatches=32, lr=3e-4, gamma=0.995, gae_lambda=0.95,
    reward_scale=10.0, value_coef=0.5, max_grad_norm=math.inf, adam_eps=1e-8, time_limit="zero",
    critic_hidden=(64, 64), activation="swish")
SHARED = {"gridworld": OFFICIAL_GRIDWORLD, "dmc": OFFICIAL_PLAYGROUND}
OWN = {
    **{(algorithm, "gridworld"): settings for algorithm, settings in OFFICIAL_GRIDWORLD_OWN.items()},
    ("ppo", "dmc"): dict(clip_eps=0.1, entropy_coef=0.01, state_dependent_std=True, actor_hidden=(32,) * 4),
    ("fpo", "pendulum"): dict(lr=3e-4),
}
# Iterations of a default run (1M env steps outside the grid world, which is solved well within 100).
ITERATIONS = {"gridworld": 100, "pendulum": 100, "dmc": 33}
DEFAULT_ITERATIONS = 100


def family(env: str) -> str:
    """The environment's family: 'gridworld', 'dmc' (Playground), or the name itself."""
    for prefix in ("gridworld", "dmc"):
        if env.startswith(prefix + "-"):
            return prefix
    return env


def tuned_config(algorithm: str, env: str, **overrides: Any):
    """The config of `algorithm` (ppo or fpo) tuned for `env`, with `overrides` on top."""
    settings = {**SHARED.get(family(env), {}), **OWN.get((algorithm, family(env)), {})}
    if overrides.get("ratio") == "denoising-mdp":  # FPO's tuned CFM settings do not apply to the DPPO-style ratio
        settings = {name: value for name, value in settings.items() if name not in CFM_ONLY}
    return dataclasses.replace(CONFIG_TYPES[algorithm](env=env), **{**settings, **overrides})


def tuned_iterations(env: str) -> int:
    """Iterations of a default training run on `env`."""
    return ITERATIONS.get(family(env), DEFAULT_ITERATIONS)
