"""The reproduction's default settings are the official code's values (akanazawa/fpo), compared as values."""

import math

import pytest

from fluxrl.experiments import fpo as fpo_experiment
from fluxrl.onpolicy.tuned import tuned_config

# Read off the official code, with the line each value comes from (gridworld/ is PyTorch, playground/ JAX).
OFFICIAL_GRIDWORLD = {
    "both": dict(epochs=10,  # main.py:124
                 minibatches=6,  # models/ppo.py:438
                 lr=3e-4, gamma=0.99,  # main.py:123-125
                 gae_lambda=0.98, max_grad_norm=0.5,  # models/ppo.py:437, 441
                 grad_clip="per-network",  # one clip_grad_norm_ per network, models/fpo.py:229, 235
                 adam_eps=1e-8,  # torch.optim.Adam
                 clip_eps=0.2,  # main.py:126
                 value_coef=2.0,  # nn.MSELoss = 2 x fluxrl's 0.5 mean square, models/fpo.py:223
                 advantage_normalization="batch",  # models/fpo.py:166
                 time_limit="terminate",  # models/ppo.py:210-212
                 normalize_observations=False, squash="none", network_init="torch",
                 actor_hidden=(64, 64), critic_hidden=(64, 64), activation="relu",  # models/network.py
                 anneal_iterations=0, reward_scale=1.0, clip_value_loss=False),
    "fpo": dict(n_mc=50,  # main.py:131
                t_sampling="uniform", output_mode="u", time_embed_dim=0, flow_steps=10,  # diffusion_policy.py
                pair_average="clamped",  # models/fpo.py:212-216
                output_scale=1.0, ratio="cfm", target_kl=None),  # FPO.learn has no KL stop
    "ppo": dict(fixed_std=math.sqrt(0.5),  # cov_var 0.5, models/ppo.py:57-58
                target_kl=0.02,  # models/ppo.py:440
                mean_output_scale=1.0, entropy_coef=0.0),
}
OFFICIAL_PLAYGROUND = {  # playground/src/flow_policy/fpo.py:19-59; PPO: Brax params + train_ppo.ipynb cell 5
    "both": dict(num_steps=480, gae_chunk=30, epochs=16, minibatches=32, lr=3e-4, gamma=0.995, gae_lambda=0.95,
                 reward_scale=10.0, value_coef=0.5, max_grad_norm=math.inf, adam_eps=1e-8, time_limit="zero",
                 advantage_normalization="minibatch", normalize_observations=True, squash="tanh",
                 activation="swish", network_init="lecun"),
    "fpo": dict(clip_eps=0.05, n_mc=8, flow_steps=10, t_sampling="grid", output_mode="eps", pair_average="losses",
                time_embed_dim=8, output_scale=0.25, actor_hidden=(32,) * 4),
    "ppo": dict(clip_eps=0.1, entropy_coef=0.01, state_dependent_std=True, actor_hidden=(32,) * 4),
}


def _check(config, expected):
    for name, value in expected.items():
        got = getattr(config, name)
        assert got == pytest.approx(value) if isinstance(value, float) else got == value, (name, got, value)


@pytest.mark.parametrize("algorithm", ["fpo", "ppo"])
def test_the_grid_world_study_runs_the_official_grid_world_values(algorithm):
    study = fpo_experiment.STUDIES[0]
    method = {"fpo": "FPO", "ppo": "Gaussian PPO"}[algorithm]
    _, config = fpo_experiment.study_config(study, method)
    _check(config, {**OFFICIAL_GRIDWORLD["both"], **OFFICIAL_GRIDWORLD[algorithm]})
    # 2,048 steps per batch officially (whole episodes, 2,048 to 2,147): here 12 x 171 = 2,052 in 6 minibatches
    assert 2048 <= config.num_envs * config.num_steps <= 2147


@pytest.mark.parametrize("algorithm", ["fpo", "ppo"])
@pytest.mark.parametrize("protocol", ["cpu-reduced-2", "paper"])
def test_the_dm_control_studies_run_the_official_playground_values(algorithm, protocol):
    study = next(s for s in fpo_experiment.STUDIES if s.name == "dmc-cartpole-balance")
    method = {"fpo": "FPO", "ppo": "Gaussian PPO"}[algorithm]
    _, config = fpo_experiment.study_config(study, method, protocol)
    _check(config, {**OFFICIAL_PLAYGROUND["both"], **OFFICIAL_PLAYGROUND[algorithm]})
    if protocol == "paper":
        assert config.num_envs == 2048 and config.critic_hidden == (256,) * 5  # fpo.py:49, 138


def test_fluxrl_settings_are_a_separate_row_and_not_the_default():
    assert tuned_config("fpo", "gridworld-two-walls").clip_eps == 0.2
    _, own = fpo_experiment.study_config(fpo_experiment.STUDIES[0], "FPO, fluxrl settings")
    assert own.clip_eps == 0.05 and own.squash == "tanh" and own.n_mc == 8
