"""Wall time of a learning-rate sweep as one vmapped axis against one learning rate, TB on hypergrid 4x8.

Three cases, each in a fresh process (so no case reuses another's compiled programs), alternating over repeats:
`one`: one learning rate x SEEDS seeds; `axis`: LRS learning rates x SEEDS seeds as one run with the learning
rate as a hyperparameter axis (one process, one compilation per chunk length); `runs`: the same learning rates as
separate runs one after another in one process (what a sweep without the axis costs). Wall time is the whole
`run` call: compilation, training, evaluations, metrics and checkpoints.

    python benchmarks/sweep_axis.py            # prints a table, writes benchmarks/results/sweep_axis.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SETTING = dict(env="hypergrid", ndim=4, height=8, loss="tb", batch_size=16)
LRS = (1e-3, 3e-4)


def config_of(lr: float):
    """(algorithm, config) of TB on SETTING's hypergrid at learning rate `lr`."""
    from fluxrl.envs.gflownet.configs import HypergridConfig
    from fluxrl.gflownet import balance

    env = HypergridConfig(ndim=SETTING["ndim"], height=SETTING["height"])
    return balance.ALGORITHM, balance.BalanceConfig(env=env, loss="tb", batch_size=SETTING["batch_size"], lr=lr)


def measure(case: str, seeds: int, iterations: int) -> dict:
    """Wall seconds of one case in this process, with the runner's compile seconds and training speed."""
    from fluxrl.core.runner import RunConfig, run
    algorithm, config = config_of(LRS[0])
    # Marks that line up, so every chunk has one length and each case compiles one chunk program.
    every = max(iterations // 4, 1)
    with tempfile.TemporaryDirectory() as out:
        run_config = RunConfig(iterations=iterations, num_seeds=seeds, out=out, log_every=max(every // 5, 1),
                               eval_every=every, checkpoint_every=every, progress=False, overwrite=True)
        began = time.perf_counter()
        if case == "one":
            summaries = [run(algorithm, config, run_config).summary]
        elif case == "axis":
            summaries = [run(algorithm, config, run_config, axis={"lr": LRS}).summary]
        else:
            summaries = [run(*config_of(lr), run_config).summary for lr in LRS]
        wall = time.perf_counter() - began
    return {"wall_seconds": wall, "compile_seconds": sum(s["compile_seconds"] for s in summaries),
            "train_ms_per_iteration": sum(1e3 / s["iterations_per_second"] for s in summaries)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per case (median)")
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--cases", nargs="*", default=["one", "axis", "runs"], choices=["one", "axis", "runs"])
    parser.add_argument("--case", help=argparse.SUPPRESS)  # a child process times this one case
    parser.add_argument("--out", default=str(HERE / "results" / "sweep_axis.json"))
    args = parser.parse_args()
    if args.case:
        print(json.dumps(measure(args.case, args.seeds, args.iterations)))
        return
    results = {case: [] for case in args.cases}
    for _ in range(args.repeats):
        for case in args.cases:
            child = subprocess.run([sys.executable, __file__, "--case", case, "--seeds", str(args.seeds),
                                    "--iterations", str(args.iterations)], capture_output=True, text=True, check=True)
            results[case].append(json.loads(child.stdout.strip().splitlines()[-1]))
            print(f"  {case}: {results[case][-1]}", flush=True)
    median = {case: {key: statistics.median(r[key] for r in runs) for key in runs[0]} for case, runs in results.items()}
    base = median.get("one", {}).get("wall_seconds")
    print(f"TB on hypergrid 4x8, batch 16, {args.seeds} seeds, {args.iterations} iterations, learning rates {LRS}, "
          f"median of {args.repeats}")
    print(f"{'case':<6} {'wall s':>8} {'compile s':>10} {'train ms/it':>12} {'x one':>7}")
    for case, values in median.items():
        ratio = values["wall_seconds"] / base if base else float("nan")
        print(f"{case:<6} {values['wall_seconds']:>8.1f} {values['compile_seconds']:>10.1f} "
              f"{values['train_ms_per_iteration']:>12.2f} {ratio:>6.2f}x")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": platform.processor() or platform.machine(), "setting": SETTING,
                                          "learning_rates": LRS, "seeds": args.seeds, "iterations": args.iterations,
                                          "median": median, "runs": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
