"""Env steps per second of a whole Gaussian PPO training run on gymnax Pendulum-v1: fluxrl against rejax.

Same settings on both sides, rejax's tuned `configs/gymnax/pendulum.yaml` (100 envs x 100 steps, 10 epochs x 10
minibatches, swish 64-64, observation normalisation, ...), same env steps per seed (`--total-steps`, whole
iterations of 10,000). Both cores work: fluxrl trains its seeds through the runner (`fluxrl.core.runner.run`, the
path `fluxrl train` takes, progress bar off), which splits them over one CPU device per core; rejax
(`benchmarks/peers/rejax_ppo.py`, in its own venv, a subprocess) runs `jax.jit(jax.vmap(algo.train))` over the same
number of seeds on its one device, with its evaluation callback off (fluxrl's PPO evaluates nothing either).
Compilation is timed apart; the rate is env steps of every seed over the compiled program's run time. Repeats
alternate the two sides; medians. Also timed: fluxrl with 8 seeds against 1 seed, and, with `--algos ppo,fpo`,
FPO's seconds per iteration against Gaussian PPO's at the same sizes (rollout, epochs, minibatches, hidden layers).

    bash benchmarks/peers/setup.sh   # rejax 0.1.3 on jax 0.10.2 in benchmarks/.venvs/rejax
    python benchmarks/onpolicy_ppo.py --peer-python benchmarks/.venvs/rejax/bin/python --algos ppo,fpo
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from offline_updates import cpu_model  # this script's folder is on sys.path

HERE = Path(__file__).resolve().parent

# rejax's configs/gymnax/pendulum.yaml, PPO section, as fluxrl PPOConfig fields.
PENDULUM_YAML = dict(num_envs=100, num_steps=100, epochs=10, minibatches=10, lr=1e-3, max_grad_norm=10.0,
                     gamma=0.995, gae_lambda=0.95, clip_eps=0.2, entropy_coef=0.0, value_coef=0.5,
                     activation="swish", actor_hidden=(64, 64), critic_hidden=(64, 64), normalize_observations=True)


def ppo_config():
    """fluxrl's Gaussian PPO on Pendulum-v1 with rejax's tuned values."""
    from fluxrl.onpolicy.ppo import PPOConfig

    return PPOConfig(env="pendulum", **PENDULUM_YAML)


def fpo_config(ppo):
    """FPO with every field it shares with `ppo` (sizes, optimiser, env) equal to ppo's, the rest FPO's defaults."""
    from fluxrl.onpolicy.fpo import FPOConfig

    shared = {f.name for f in dataclasses.fields(FPOConfig)} & {f.name for f in dataclasses.fields(ppo)}
    return FPOConfig(**{name: getattr(ppo, name) for name in shared})


def fluxrl_run(algorithm, config, num_seeds: int, iterations: int) -> dict:
    """Rate, compile and train seconds, and final return of one fluxrl run through the runner."""
    from fluxrl.core.runner import RunConfig, run

    with tempfile.TemporaryDirectory() as out:
        run_config = RunConfig(iterations=iterations, num_seeds=num_seeds, out=out, log_every=iterations,
                               eval_every=iterations, eval_at_start=False, checkpoint_every=iterations,
                               progress=False)
        summary = run(algorithm, config, run_config).summary
    rate = summary["env_steps_per_second"]
    return {"env_steps_per_second": rate, "compile_seconds": summary["compile_seconds"],
            "train_seconds": iterations * config.num_envs * config.num_steps * num_seeds / rate,
            "episode_return": summary.get("episode_return", {})}


def peer_run(peer_python: str, num_seeds: int, total_steps: int) -> dict:
    """rejax's JSON result line, run in the peer's venv."""
    c = PENDULUM_YAML
    command = [peer_python, str(HERE / "peers" / "rejax_ppo.py"), "--num-seeds", str(num_seeds),
               "--total-steps", str(total_steps), "--num-envs", str(c["num_envs"]), "--num-steps", str(c["num_steps"]),
               "--epochs", str(c["epochs"]), "--minibatches", str(c["minibatches"]), "--lr", str(c["lr"]),
               "--max-grad-norm", str(c["max_grad_norm"]), "--gamma", str(c["gamma"]),
               "--gae-lambda", str(c["gae_lambda"]), "--clip-eps", str(c["clip_eps"]),
               "--entropy-coef", str(c["entropy_coef"]), "--value-coef", str(c["value_coef"]),
               "--activation", c["activation"], "--hidden", *map(str, c["actor_hidden"])]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"rejax run failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer-python", default=None, help="python of a venv with rejax (omit: fluxrl only)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per cell (median)")
    parser.add_argument("--total-steps", type=int, default=150_000, help="env steps per seed (the yaml's value)")
    parser.add_argument("--num-seeds", type=int, default=2, help="seeds of the fluxrl vs rejax runs")
    parser.add_argument("--scaling-seeds", default="1,8", help="seed counts of fluxrl's scaling rows ('' skips)")
    parser.add_argument("--algos", default="ppo", help="comma-separated: ppo, fpo (fpo: cost per iteration)")
    parser.add_argument("--out", default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    from fluxrl.onpolicy import ppo

    config = ppo_config()
    steps_per_iteration = config.num_envs * config.num_steps
    iterations = -(-args.total_steps // steps_per_iteration)
    algos = {"ppo": (ppo.ALGORITHM, config)}
    if "fpo" in args.algos.split(","):
        try:
            from fluxrl.onpolicy import fpo
            algos["fpo"] = (fpo.ALGORITHM, fpo_config(config))
        except (ImportError, AttributeError) as error:
            print(f"fpo skipped: {error}")
    scaling = [int(n) for n in args.scaling_seeds.split(",") if n]
    runs: dict[str, list[dict]] = {}
    for repeat in range(args.repeats):
        cells = [(f"{name} {args.num_seeds} seeds", name, args.num_seeds) for name in algos]
        cells += [(f"ppo {n} seed{'s' if n > 1 else ''}", "ppo", n) for n in scaling if n != args.num_seeds]
        for cell, name, seeds in cells:
            algorithm, algo_config = algos[name]
            result = fluxrl_run(algorithm, algo_config, seeds, iterations)
            runs.setdefault(f"fluxrl {cell}", []).append(result)
            print(f"  [{repeat + 1}] fluxrl {cell}: {result['env_steps_per_second']:,.0f} env steps/s, "
                  f"train {result['train_seconds']:.1f} s, compile {result['compile_seconds']:.1f} s", flush=True)
        if args.peer_python:
            peer = peer_run(args.peer_python, args.num_seeds, args.total_steps)
            runs.setdefault(f"rejax ppo {args.num_seeds} seeds", []).append(
                {"env_steps_per_second": peer["env_steps_per_second"][0], "compile_seconds": peer["compile_seconds"],
                 "train_seconds": peer["run_seconds"][0], "eval_return": peer["eval_return"],
                 "library": peer["library"], "seeds": peer["seeds"]})
            print(f"  [{repeat + 1}] rejax: {peer['env_steps_per_second'][0]:,.0f} env steps/s, "
                  f"train {peer['run_seconds'][0]:.1f} s, compile {peer['compile_seconds']:.1f} s, "
                  f"eval return {[round(r) for r in peer['eval_return']]}", flush=True)

    med = {cell: {key: statistics.median(r[key] for r in results)
                  for key in ("env_steps_per_second", "compile_seconds", "train_seconds")}
           for cell, results in runs.items()}
    print(f"\ngymnax Pendulum-v1, rejax's pendulum.yaml PPO settings, {iterations} iterations = "
          f"{iterations * steps_per_iteration:,} env steps per seed; CPU ({cpu_model()}, {os.cpu_count()} cores); "
          f"median of {args.repeats}")
    print(f"fluxrl: seeds split over {min(args.num_seeds, os.cpu_count() or 1)} CPU devices by the runner"
          + (f"; rejax: {runs[f'rejax ppo {args.num_seeds} seeds'][0]['seeds']} "
             f"({runs[f'rejax ppo {args.num_seeds} seeds'][0]['library']})" if args.peer_python else ""))
    # The fastest run of a cell is the least disturbed by other work on the machine; it is shown beside the median.
    best = {cell: max(r["env_steps_per_second"] for r in results) for cell, results in runs.items()}
    print(f"{'run':<24} {'env steps/s':>12} {'(fastest)':>10} {'train s':>8} {'compile s':>10}")
    for cell, m in med.items():
        print(f"{cell:<24} {m['env_steps_per_second']:>12,.0f} {best[cell]:>10,.0f} {m['train_seconds']:>8.2f} "
              f"{m['compile_seconds']:>10.1f}")
    ratios = {}
    peer_cell, ours_cell = f"rejax ppo {args.num_seeds} seeds", f"fluxrl ppo {args.num_seeds} seeds"
    if peer_cell in med:
        ratios["fluxrl_over_rejax"] = med[ours_cell]["env_steps_per_second"] / med[peer_cell]["env_steps_per_second"]
        ratios["fluxrl_over_rejax_fastest"] = best[ours_cell] / best[peer_cell]
        print(f"fluxrl / rejax env steps/s: {ratios['fluxrl_over_rejax']:.2f}x median, "
              f"{ratios['fluxrl_over_rejax_fastest']:.2f}x fastest runs (target >= 1.5x)")
    if len(scaling) == 2:
        cell = lambda n: ours_cell if n == args.num_seeds else f"fluxrl ppo {n} seed{'s' if n > 1 else ''}"
        low, high = sorted(scaling)
        ratios["seed_scaling"] = med[cell(high)]["train_seconds"] / med[cell(low)]["train_seconds"]
        print(f"fluxrl {high} seeds / {low} seed train time: {ratios['seed_scaling']:.2f}x "
              f"(target <= 3x for 8 vs 1)")
    fpo_cell = f"fluxrl fpo {args.num_seeds} seeds"
    if fpo_cell in med:
        ratios["fpo_over_ppo_per_iteration"] = med[fpo_cell]["train_seconds"] / med[ours_cell]["train_seconds"]
        print(f"FPO / Gaussian PPO seconds per iteration: {ratios['fpo_over_ppo_per_iteration']:.2f}x "
              f"({med[fpo_cell]['train_seconds'] / iterations:.3f} s vs "
              f"{med[ours_cell]['train_seconds'] / iterations:.3f} s, {args.num_seeds} seeds)")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({
            "machine": cpu_model(), "cores": os.cpu_count(), "python": sys.version.split()[0],
            "settings": {**PENDULUM_YAML, "env": "gymnax Pendulum-v1", "iterations": iterations,
                         "env_steps_per_seed": iterations * steps_per_iteration},
            "medians": med, "fastest": best, "ratios": ratios, "runs": runs}, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
