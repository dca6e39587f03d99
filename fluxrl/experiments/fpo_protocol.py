"""The FPO reproduction's protocol table: every setting against the official code (akanazawa/fpo), with the reason
for each difference."""

from __future__ import annotations

# setting | official code (path:line) | ours | why they differ ("" where the code does the same)
PROTOCOL_TABLE = (
    ("grid world", "gridworld/utils/gridworld.py: 25x25, goals rows 0-1 and 23-24 (+20), 100-step limit (:261), "
     "actions clipped then rounded (:341), starts uniform off the goals (:330-333)",
     "fluxrl/envs/control/gridworld.py", "none in the dynamics; docs/official_runs.md: the official environment "
     "and ours stepped on recorded action sequences"),
    ("time convention", "noise at t = 0 (diffusion_policy.py:132)", "noise at tau = 0", ""),
    ("grid-world networks", "64-64 ReLU, PyTorch default init (models/network.py); FPO input [obs, x_t, raw t] "
     "(diffusion_policy.py:133), raw unsquashed action", "the same (network_init torch, time_embed_dim 0, "
     "output_scale 1, squash none)", ""),
    ("grid-world batch", "whole episodes until >= 2,048 steps (2,048-2,147), 10 epochs, 6 minibatches of "
     "steps // 6 plus a remainder minibatch of 1-5 (main.py:121-124, models/ppo.py:124-143, 438)",
     "12 envs x 171 steps = 2,052, 10 epochs x 6 minibatches of 342", "vectorised fixed-length rollouts; a rollout "
     "ending mid-episode bootstraps from the critic"),
    ("grid-world optimiser", "Adam 3e-4 (eps 1e-8) per network, each clipped to norm 0.5; lr annealed over 200M steps "
     "(constant within 1%); MSE critic loss (models/fpo.py:45-46, 177-182, 223-235)", "one Adam over both networks "
     "(element-wise, so the same steps), per-network clip 0.5, value_coef 2 on the 0.5 MSE, constant lr", ""),
    ("grid-world returns", "gamma 0.99, GAE 0.98, no bootstrap at any episode end (models/ppo.py:197-223), "
     "advantages standardised over the batch (eps 1e-10)", "the same (time_limit terminate, advantage_normalization "
     "batch, eps 1e-8)", ""),
    ("grid-world FPO", "n_mc 50, t ~ U(0, 1), velocity loss, per-pair differences clamped to +-3, averaged, "
     "clamped again (main.py:131, diffusion_policy.py:101-136, models/fpo.py:212-216), clip 0.2, no KL stop",
     "the same", ""),
    ("grid-world Gaussian", "fixed covariance diag(0.5), raw action, KL early stop at 0.02 on the last minibatch of "
     "an epoch (models/ppo.py:57-58, 154-182, 440), clip 0.2", "the same (fixed_std 0.7071, target_kl 0.02, squash "
     "none)", ""),
    ("grid-world budget", "200M steps requested (main.py:64), stopped by hand", "100 iterations = 205,200 env steps "
     "per seed, 5 seeds", "budget: both methods reach a goal from every start (return 20) well before; chosen on "
     "the return, not on the bimodality measure"),
    ("grid-world measure", "none in the code; the paper shows action samples at saddle states", "saddle_two_modes: "
     "share of saddle states whose own samples are two modes heading to the two goals (docs/metrics.md), with an "
     "untrained FPO, an untrained Gaussian and a std-1 Gaussian as controls; the paper's figure of samples", ""),
    ("continuous control", "10 Playground DM Control tasks, 2,048 envs x 480 steps per update (983,040), 61 updates "
     "= 60M steps, 5 seeds (fpo.py:44-59, 64-70)", "CartpoleBalance and ReacherEasy (impl jax), 64 envs x 480 steps "
     "per update (30,720: 1/32), 33 updates = 1M steps (1/60), 3 seeds; `--protocol paper`: 2,048 envs, 61 updates",
     "CPU budget (docs/onpolicy.md gives the paper budget's estimated time)"),
    ("Playground FPO and PPO", "16 epochs x 32 minibatches of chunks of 30 steps, advantages recomputed per "
     "minibatch with the current critic (fpo.py:521-550), reward x 10, gamma 0.995, lambda 0.95, Adam 3e-4 "
     "(eps 1e-8), no grad clip, 0.25 x MSE value loss, a time limit zeroes the TD error, advantage and value loss "
     "(rollouts.py:288-330, fpo.py:684)", "the same (gae_chunk 30, time_limit zero)", ""),
    ("Playground advantage form", "Brax's r_t + gamma vs_{t+1} - V_t (rollouts.py:324-325)", "GAE A_t = sum of "
     "(gamma lambda)^k delta_{t+k}", "one advantage estimator in fluxrl (the one-step lookahead differs by lambda)"),
    ("Playground observation normalisation", "running statistics updated before the epochs; the variance sum is "
     "not accumulated (math_utils.py:70-72)", "statistics updated after the epochs (the ratio starts at 1), "
     "accumulated exactly", "the official variance shrinks with the number of updates, a bug we do not copy"),
    ("Playground FPO", "clip 0.05, n_mc 8, t on the sampler grid, eps-MSE, losses averaged before exp, 4 x 32 SiLU, "
     "output x 0.25, 8-dim Fourier t, tanh actions (fpo.py:19-41)", "the same", ""),
    ("Playground Gaussian PPO", "lr 3e-4 and clip 0.1 (train_ppo.ipynb cell 5) over Brax's DM Control params: "
     "entropy 0.01, 4 x 32 SiLU with a state-dependent std, tanh actions", "the same", ""),
    ("critic", "5 x 256 SiLU (fpo.py:138)", "64-64 SiLU (paper protocol: 5 x 256)", "at 1M steps the 5 x 256 critic "
     "is about 25 TFLOP per run, about 4 min per seed here; 64-64 costs under 1/50 of it"),
    ("Pendulum", "not in the paper", "gymnax Pendulum-v1, rejax's tuned PPO sizes for both, FPO's official lr 3e-4 "
     "and clip 0.05, 1M steps, 3 seeds; the ablations n_mc 1 / 4 and the u loss", "a cheap extra task; nothing "
     "tuned on its result"),
    ("evaluation", "Playground: 128 evaluation episodes after training (rollouts.py:112-167); grid world: training "
     "episodes", "the training episodes' mean return at the last iteration; the grid world: 1,000 samples per saddle "
     "state and 64 rollouts from the start cell (fluxrl/onpolicy/gridworld_eval.py)", "the training curve needs no "
     "separate environment; FPO's official evaluation samples the noise too"),
)


def protocol_table() -> list[str]:
    """Markdown rows of PROTOCOL_TABLE."""
    from fluxrl.experiments.common import protocol_markdown

    return protocol_markdown(PROTOCOL_TABLE)
