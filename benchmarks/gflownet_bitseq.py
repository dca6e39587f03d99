"""Bit sequences (n=120, k=8, 60 modes): modes found and test Spearman over training for TB, DB and SubTB.

Each loss trains `--seeds` seeds in one process through the normal runner; the uniform random policy given the
same number of samples is the baseline for modes found. The reference protocol is 10,000 iterations, 4 seeds,
the full 7,200-sequence test set; smaller values make a named reduced protocol (recorded in the output).

    python benchmarks/gflownet_bitseq.py --iterations 10000 --seeds 4
"""

from __future__ import annotations

import argparse
import os
import csv
import json
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
LOSS_SETTINGS = {  # Tiapkin et al. 2024, bit sequences k = 8: Adam 2e-3, log Z lr 1e-3, SubTB lambda 1.9
    "tb": dict(loss="tb", log_z_lr=1e-3),
    "db": dict(loss="db"),
    "subtb": dict(loss="subtb", subtb_lambda=1.9),
}


def train(loss: str, args, out: Path) -> list[dict]:
    """Rows of metrics.csv of one multi-seed run."""
    from fluxrl.core.runner import RunConfig, run
    from fluxrl.envs.gflownet.configs import BitSequenceConfig
    from fluxrl.gflownet import balance

    env = BitSequenceConfig(n=120, k=8, num_modes=60, beta=2.0, test_set_size=args.test_set_size)
    algorithm = balance.ALGORITHM
    config = balance.BalanceConfig(env=env, batch_size=16, lr=2e-3, backward_policy="uniform", **LOSS_SETTINGS[loss])
    # A path relative to the working directory: it is written into config.json, which is committed.
    run_config = RunConfig(iterations=args.iterations, num_seeds=args.seeds, out=os.path.relpath(out / loss),
                           log_every=args.log_every, eval_every=args.eval_every,
                           checkpoint_every=args.eval_every, overwrite=True, progress=args.progress)
    run(algorithm, config, run_config)
    with (out / loss / "metrics.csv").open() as file:
        return list(csv.DictReader(file))


def uniform_modes_found(num_samples: int, seed: int) -> int:
    """Modes within Hamming distance 30 of any of `num_samples` uniformly random sequences."""
    from fluxrl.envs.gflownet.bitseq import BitSequence, bitseq_params

    env = BitSequence()
    modes = np.asarray(bitseq_params(env).modes, np.float32)
    rng = np.random.default_rng(seed)
    found = np.zeros(len(modes), bool)
    for start in range(0, num_samples, 20_000):
        bits = rng.integers(0, 2, (min(20_000, num_samples - start), env.n)).astype(np.float32)
        distance = bits @ (1 - modes).T + (1 - bits) @ modes.T
        found |= (distance <= env.mode_threshold).any(axis=0)
    return int(found.sum())


def plot(results: dict, baseline: dict, path: Path, protocol: str) -> None:
    from fluxrl.experiments.common import curve as curves

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (modes_axis, spearman_axis) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for loss, rows in results.items():
        for axis, metric in ((modes_axis, "modes_found"), (spearman_axis, "spearman")):
            x, values = curves(rows, metric)
            mean = values.mean(axis=0)
            line, = axis.plot(x, mean, label=loss.upper())
            axis.fill_between(x, values.min(axis=0), values.max(axis=0), color=line.get_color(), alpha=0.2)
    modes_axis.plot(baseline["iterations"], baseline["modes_found"], "k--", label="uniform random")
    modes_axis.set(xlabel="iteration (16 trajectories each)", ylabel="modes found (of 60)", title="modes found")
    spearman_axis.set(xlabel="iteration", ylabel="Spearman(log R, log p estimate)", title="test correlation")
    for axis in (modes_axis, spearman_axis):
        axis.legend()
        axis.grid(alpha=0.3)
    figure.suptitle(f"bit sequences n=120 k=8: mean over seeds, band = min..max ({protocol})", fontsize=10)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    from fluxrl.experiments.common import curve

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--losses", nargs="+", default=list(LOSS_SETTINGS), choices=list(LOSS_SETTINGS))
    parser.add_argument("--log-every", type=int, default=250)
    parser.add_argument("--eval-every", type=int, default=2500)
    parser.add_argument("--test-set-size", type=int, default=7200)
    parser.add_argument("--out", default=str(HERE / "results" / "gflownet_bitseq"))
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args()
    full = args.iterations >= 10_000 and args.seeds >= 4 and args.test_set_size >= 7200
    protocol = "reference protocol" if full else (
        f"reduced protocol: {args.iterations} iterations, {args.seeds} seeds, test set {args.test_set_size}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results, seconds = {}, {}
    for loss in args.losses:
        began = time.perf_counter()
        results[loss] = train(loss, args, out)
        seconds[loss] = time.perf_counter() - began
    checkpoints = list(range(args.log_every, args.iterations + 1, args.log_every))
    baseline = {"iterations": checkpoints,
                "modes_found": [uniform_modes_found(16 * i, seed=0) for i in checkpoints]}
    summary = {"protocol": protocol, "iterations": args.iterations, "seeds": args.seeds,
               "test_set_size": args.test_set_size, "uniform_random_modes_found": baseline["modes_found"][-1],
               "wall_seconds": seconds, "final": {}}
    for loss, rows in results.items():
        _, modes = curve(rows, "modes_found")
        _, spearman = curve(rows, "spearman")
        summary["final"][loss] = {"modes_found": modes[:, -1].tolist(), "spearman": spearman[:, -1].tolist()}
        print(f"{loss:>6}: modes found {modes[:, -1].mean():5.1f} (seeds {modes[:, -1].tolist()}), "
              f"spearman {spearman[:, -1].mean():.3f} (seeds {np.round(spearman[:, -1], 3).tolist()}), "
              f"{seconds[loss]:.0f} s")
    print(f"uniform random policy, {16 * args.iterations} samples: {baseline['modes_found'][-1]} modes found")
    plot(results, baseline, out / "curves.png", protocol)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{protocol}; curves in {out / 'curves.png'}, numbers in {out / 'summary.json'}")


if __name__ == "__main__":
    main()
