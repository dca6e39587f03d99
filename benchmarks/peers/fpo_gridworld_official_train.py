"""Train the official FPO or PPO grid-world agent (akanazawa/fpo, gridworld/), then sample its trained policy.

Trains for a fixed number of iterations, then samples actions at the saddle cells and rolls out episodes from the
start cell.

The official modules are imported unedited; all interventions are made from here:
- seeds: random / np.random / torch.manual_seed(seed) before the models are built and one env.reset(seed=seed)
  after GridWorldEnv is built (the official code seeds nothing);
- one thread: torch.set_num_threads(threads);
- a stop after `iters` iterations: `_log_summary` is wrapped and raises StopTraining after the official summary of
  iteration `iters`; learn() still gets main.py's total_timesteps=200_000_000, so the lr annealing is the official
  one;
- wandb disabled (WANDB_MODE=disabled), matplotlib without a display (MPLBACKEND=Agg).
The hyperparameters are main.py:120-133's dict exactly, plus run_name as main.py:158.

Afterwards (the env's own observation of a cell: env.pos = cell; env._get_obs()):
- `samples` actions at each saddle cell of --saddle-json (written by fpo_gridworld_official.sh from fluxrl's
  gridworld_eval.saddle_headings('two_walls')): FPO DiffusionPolicy.sample_action(obs) one call per sample, as
  the official test path (main.py:103); PPO the official PPO.get_action(obs), N(actor(obs), diag 0.5). These are
  raw env actions (the env clips, then rounds);
- `rollouts` episodes from the start cell (17, 12) (env.reset(), then env.pos and env.steps set) with the same
  samplers, until the env terminates or truncates (100 steps), and the cell each ended in.
Writes OUT/METHOD_seedSEED.npz and the trained networks to OUT/run_METHOD_seedSEED/.

Run with the official venv (benchmarks/.venvs/fpo-official, see setup.sh), from the repository root:

    OMP_NUM_THREADS=1 benchmarks/.venvs/fpo-official/bin/python benchmarks/peers/fpo_gridworld_official_train.py \
        --official DIR --method fpo --seed 0 --iters 100

DIR (or env var FPO_OFFICIAL_DIR): an export of akanazawa/fpo's gridworld/ folder (git archive HEAD gridworld).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time

import numpy as np

from fpo_gridworld_official import official_parser  # this folder is on sys.path when the script runs


class StopTraining(Exception):
    """Raised after the last iteration's summary to leave the official learn() loop."""


def main():
    """Train, sample, roll out, save."""
    parser = official_parser(__doc__.splitlines()[0])
    parser.add_argument("--method", choices=["fpo", "ppo"], required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="runs/fpo-gridworld-official")
    parser.add_argument("--saddle-json", default=None,
                        help="saddle cells and start cell (default OUT/saddle_two_walls.json)")
    parser.add_argument("--samples", type=int, default=1000, help="actions per saddle cell")
    parser.add_argument("--rollouts", type=int, default=64, help="episodes from the start cell")
    args = parser.parse_args()
    # absolute paths: the run changes directory before it reads the saddle cells and writes its results
    out = os.path.abspath(args.out)
    saddle_json = os.path.abspath(args.saddle_json or os.path.join(out, "saddle_two_walls.json"))
    os.environ.setdefault("WANDB_MODE", "disabled")
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.path.insert(0, os.path.abspath(args.official))
    import torch
    import wandb
    from models.diffusion_policy import DiffusionPolicy
    from models.fpo import FPO
    from models.network import FeedForwardNN
    from models.ppo import PPO
    from utils.gridworld import GridWorldEnv

    torch.set_num_threads(args.threads)
    run_dir = os.path.join(out, f"run_{args.method}_seed{args.seed}")
    os.makedirs(run_dir, exist_ok=True)
    os.chdir(run_dir)  # the official learn() writes ./{method}_actor.pth every 10 iterations

    # main.py:120-133, verbatim values
    hyperparameters = {
        'timesteps_per_batch': 2048,
        'max_timesteps_per_episode': 200,
        'gamma': 0.99,
        'n_updates_per_iteration': 10,
        'lr': 3e-4,
        'clip': 0.2,
        'render': True,
        'render_every_i': 1000,
        'grid_mode': 'two_walls',
        'num_fpo_samples': 50,
        'positive_advantage': False,
    }
    hyperparameters["run_name"] = f"{args.method}_seed{args.seed}"
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    env = GridWorldEnv(mode=hyperparameters['grid_mode'])
    env.reset(seed=args.seed)
    wandb.init(project="fpo-diffusion-grid", name=hyperparameters["run_name"], config=hyperparameters,
               tags=[args.method, "gridworld", "train"])
    if args.method == "ppo":
        model = PPO(policy_class=FeedForwardNN, env=env, **hyperparameters)
    else:
        model = FPO(actor_class=DiffusionPolicy, critic_class=FeedForwardNN, env=env, **hyperparameters)

    history = []  # (iteration, timesteps, mean episode return, mean episode length)
    original_summary = model._log_summary

    def log_summary():
        """Record the iteration, print the official summary, stop after the last iteration."""
        i = model.logger['i_so_far']
        history.append((i, int(model.logger['t_so_far']),
                        float(np.mean([np.sum(r) for r in model.logger['batch_rews']])),
                        float(np.mean(model.logger['batch_lens']))))
        original_summary()
        if i >= args.iters:
            raise StopTraining

    model._log_summary = log_summary
    start = time.time()
    cpu_start = time.process_time()
    try:
        model.learn(total_timesteps=200_000_000)  # main.py:64
    except StopTraining:
        pass
    wall = time.time() - start
    cpu = time.process_time() - cpu_start
    torch.save(model.actor.state_dict(), os.path.join(run_dir, "actor_final.pth"))
    torch.save(model.critic.state_dict(), os.path.join(run_dir, "critic_final.pth"))
    print(f"trained {args.method} seed {args.seed}: {len(history)} iterations, {history[-1][1]} steps, "
          f"{wall:.1f} s wall, {cpu:.1f} s CPU, final mean return {history[-1][2]:.3f}", flush=True)

    # evaluation draws from its own seed, independent of how many numbers training drew
    torch.manual_seed(10_000 + args.seed)
    model.actor.eval()

    def act(obs):
        """One raw env action of the trained policy, sampled as the official code does."""
        if args.method == "fpo":
            return model.actor.sample_action(torch.tensor(obs, dtype=torch.float32)).detach().cpu().numpy()
        return model.get_action(obs)[0]

    with open(saddle_json) as f:
        saddle = json.load(f)
    cells = np.array(saddle["cells"], np.int32)
    start_cell = np.array(saddle.get("start", [17, 12]), np.int32)
    eval_start = time.time()
    observations = np.zeros((len(cells), 2), np.float32)
    actions = np.zeros((len(cells), args.samples, 2), np.float32)
    for c, cell in enumerate(cells):
        env.pos = np.array(cell, int)
        observations[c] = env._get_obs()
        for s in range(args.samples):
            actions[c, s] = act(observations[c])

    goal = np.full(args.rollouts, -1, np.int32)  # fluxrl's goal labels: 0 rows y <= 1, 1 rows y >= 23, -1 neither
    lengths = np.zeros(args.rollouts, np.int32)
    final_cells = np.zeros((args.rollouts, 2), np.int32)
    for e in range(args.rollouts):
        env.reset()
        env.pos = np.array(start_cell, int)
        env.steps = 0
        obs = env._get_obs()
        for t in range(env.max_steps):
            obs, r, terminated, truncated, _ = env.step(act(obs))
            if terminated or truncated:
                break
        lengths[e] = t + 1
        final_cells[e] = env.pos
        goal[e] = 0 if env.pos[1] <= 1 else (1 if env.pos[1] >= 23 else -1)
    eval_wall = time.time() - eval_start
    history = np.array(history, np.float64)
    path = os.path.join(out, f"{args.method}_seed{args.seed}.npz")
    np.savez(path, cells=cells, observations=observations, actions=actions, start_cell=start_cell,
             rollout_goal=goal, rollout_length=lengths, rollout_final_cell=final_cells,
             final_return=history[-1, 2], final_length=history[-1, 3], wall_time=wall, cpu_time=cpu,
             eval_wall_time=eval_wall, history=history, iterations=len(history), timesteps=history[-1, 1],
             torch_version=torch.__version__, threads=args.threads)
    print(f"rollouts from {start_cell.tolist()}: bottom {int((goal == 0).sum())}, top {int((goal == 1).sum())}, "
          f"none {int((goal == -1).sum())}; eval {eval_wall:.1f} s; wrote {path}", flush=True)


if __name__ == "__main__":
    main()
