"""Updates per second of fluxrl's TD3+BC and IQL against d3rlpy's, same network sizes, batch and dataset shapes.

fluxrl trains through the runner (`fluxrl.core.runner.run`: one compiled scan of updates, compilation timed
apart), one seed and then two seeds (one per core); updates/s counts every seed's updates. d3rlpy
(`benchmarks/peers/d3rlpy_updates.py`) runs in its own venv as a subprocess: sample a batch and update, as its `fit`
loop does, after warm-up. Both sides: a synthetic dataset of 200,000 transitions with halfcheetah's shapes
(observation 17, action 6), batch 256, every network 2x256 ReLU, CPU. Repeats alternate the runs; medians.

    bash benchmarks/peers/setup.sh   # d3rlpy 2.8.1 on torch 2.13.0 in benchmarks/.venvs/d3rlpy
    python benchmarks/offline_updates.py --peer-python benchmarks/.venvs/d3rlpy/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ALGORITHMS = ("td3bc", "iql")
SHAPES = dict(size=200_000, obs_dim=17, action_dim=6)


def cpu_model() -> str:
    """The CPU's model name (as lscpu prints it), or the machine type where /proc/cpuinfo is missing."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def synthetic_dataset(size: int, obs_dim: int, action_dim: int, seed: int = 0):
    """A fluxrl Dataset of `size` random transitions, episodes of 1,000 steps cut by time limits."""
    from fluxrl.offline.datasets import Dataset

    rng = np.random.default_rng(seed)
    observations = rng.standard_normal((size + 1, obs_dim), dtype=np.float32)
    timeouts = np.zeros(size, np.float32)
    timeouts[999::1000] = 1.0
    return Dataset(observations=observations[:-1], actions=rng.uniform(-1, 1, (size, action_dim)).astype(np.float32),
                   rewards=rng.standard_normal(size, dtype=np.float32), terminals=np.zeros(size, np.float32),
                   timeouts=timeouts, next_observations=observations[1:])


def fluxrl_updates(algo: str, data, num_seeds: int, iterations: int, hidden: int, depth: int,
                   batch_size: int) -> tuple[float, float]:
    """(updates per second over every seed, compile seconds) of one fluxrl run through the runner."""
    from fluxrl.core.runner import RunConfig, run
    from fluxrl.offline import iql, td3bc

    if algo == "td3bc":
        module, config = td3bc, td3bc.TD3BCConfig(batch_size=batch_size, hidden=hidden, depth=depth)
    else:  # the actor's cosine decay over the run, as `fluxrl train offline` sets it
        module, config = iql, iql.IQLConfig(batch_size=batch_size, hidden=hidden, depth=depth,
                                            actor_lr_decay_steps=iterations)
    with tempfile.TemporaryDirectory() as out:
        run_config = RunConfig(iterations=iterations, num_seeds=num_seeds, out=out, log_every=iterations,
                               eval_every=iterations, eval_at_start=False, checkpoint_every=iterations,
                               progress=False)
        summary = run(module.ALGORITHM, config, run_config, data=data).summary
    return summary["updates_per_second"], summary["compile_seconds"]


def peer_updates(peer_python: str, algo: str, updates: int, hidden: int, depth: int, batch_size: int) -> dict:
    """d3rlpy's JSON result line for `algo`, run in the peer's venv."""
    command = [peer_python, str(HERE / "peers" / "d3rlpy_updates.py"), "--algo", algo, "--updates", str(updates),
               "--hidden", str(hidden), "--depth", str(depth), "--batch-size", str(batch_size),
               "--size", str(SHAPES["size"]), "--obs-dim", str(SHAPES["obs_dim"]),
               "--action-dim", str(SHAPES["action_dim"])]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer-python", default=None, help="python of a venv with d3rlpy (omit: fluxrl only)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per cell (median)")
    parser.add_argument("--iterations", type=int, default=3000, help="fluxrl updates per seed per run")
    parser.add_argument("--peer-updates", type=int, default=500, help="d3rlpy timed updates per run")
    parser.add_argument("--algos", nargs="*", default=list(ALGORITHMS), choices=ALGORITHMS)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--out", default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    from fluxrl.offline.common import make_offline_data

    data = make_offline_data(synthetic_dataset(**SHAPES))
    nets = dict(hidden=args.hidden, depth=args.depth, batch_size=args.batch_size)
    runs = {(algo, side): [] for algo in args.algos for side in ("fluxrl 1 seed", "fluxrl 2 seeds", "d3rlpy",
                                                                       "d3rlpy update only")}
    compile_seconds = {algo: [] for algo in args.algos}
    peer_info = {}
    for _ in range(args.repeats):
        for algo in args.algos:
            for seeds in (1, 2):
                rate, compiled = fluxrl_updates(algo, data, seeds, args.iterations, **nets)
                runs[(algo, f"fluxrl {seeds} seed{'s' if seeds > 1 else ''}")].append(rate)
                compile_seconds[algo] += [compiled] if seeds == 1 else []
                print(f"  {algo} fluxrl {seeds} seed(s): {rate:.1f} updates/s, compile {compiled:.1f} s", flush=True)
            if args.peer_python:
                peer_info[algo] = peer_updates(args.peer_python, algo, args.peer_updates, **nets)
                runs[(algo, "d3rlpy")].append(peer_info[algo]["updates_per_second"])
                runs[(algo, "d3rlpy update only")].append(peer_info[algo]["update_only_per_second"])
                print(f"  {algo} d3rlpy: {peer_info[algo]}", flush=True)

    median = {cell: statistics.median(values) for cell, values in runs.items() if values}
    print(f"\nsynthetic halfcheetah shapes ({SHAPES['size']:,} x obs {SHAPES['obs_dim']}, action "
          f"{SHAPES['action_dim']}), batch {args.batch_size}, {args.depth}x{args.hidden} MLPs, CPU "
          f"({cpu_model()}, {os.cpu_count()} cores), median of {args.repeats}")
    print(f"{'algorithm':<7} {'run':<18} {'updates/s':>10} {'x d3rlpy':>9}   runs")
    rows = []
    for (algo, side), values in runs.items():
        if not values:
            continue
        peer = median.get((algo, "d3rlpy"))
        ratio = median[(algo, side)] / peer if peer else float("nan")
        rows.append(dict(algo=algo, run=side, updates_per_second=median[(algo, side)], ratio_to_d3rlpy=ratio,
                         runs=values))
        print(f"{algo:<7} {side:<18} {median[(algo, side)]:>10.1f} {ratio:>8.2f}x   "
              + ", ".join(f"{v:.1f}" for v in values))
    for algo in args.algos:
        print(f"{algo} fluxrl compile seconds (1 seed): " + ", ".join(f"{c:.1f}" for c in compile_seconds[algo]))
    if not args.out:
        return
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": cpu_model(), "cores": os.cpu_count(),
                                          "python": sys.version.split()[0], "settings": {**SHAPES, **nets},
                                          "fluxrl_iterations": args.iterations, "rows": rows,
                                          "compile_seconds": compile_seconds, "peer": peer_info}, indent=2) + "\n")


if __name__ == "__main__":
    main()
