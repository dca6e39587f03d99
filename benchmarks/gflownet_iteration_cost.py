"""Cost per iteration of GFlowNet variants against plain TB at the same batch size (16 trajectories).

Exploration (replay, LGGFN, teacher, SA-GFN): LGGFN samples 1.5x the trajectories of TB (B/2 main + B
auxiliary), re-scores B auxiliary trajectories under the main model and trains two models; target <= 3x TB.
Soft RL (soft DQN, M-DQN): 16 trajectories collected, one prioritised replay batch of 256 transitions trained;
target <= 2x TB.

    python benchmarks/gflownet_iteration_cost.py    # prints a table, writes benchmarks/results/...json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from fluxrl.envs.gflownet.configs import HypergridConfig, ParenthesesConfig
from fluxrl.gflownet.algorithms import configure
from fluxrl.gflownet.lggfn import LGGFNConfig
from fluxrl.gflownet.networks import TransformerConfig
from fluxrl.gflownet.sagfn import SAGFNConfig
from fluxrl.gflownet.teacher import TeacherConfig
from fluxrl.gflownet.trajectory_replay import ReplayConfig

HERE = Path(__file__).resolve().parent
SETTINGS = {  # name -> (config fields, iterations timed)
    "hypergrid 4x8": (dict(env=HypergridConfig(ndim=4, height=8, r0=0.1)), 1000),
    "hypergrid 64x64 hard": (dict(env=HypergridConfig(ndim=2, height=64, reward="hard")), 500),
    "parentheses 32": (dict(env=ParenthesesConfig(max_tokens=32)), 300),
    # the LGGFN paper's policy on parentheses (reproduce lggfn --protocol paper): GPT-2 sizes, causal
    "parentheses 32 transformer": (dict(env=ParenthesesConfig(max_tokens=32, unique_mode_samples=0),
                                        network=TransformerConfig(d_model=128, heads=4, layers=2)), 20),
}
VARIANTS = {  # label -> (algorithm, its config's fields)
    "TB": ("tb", dict()),
    "replay": ("tb", dict(explore=ReplayConfig())),
    "LGGFN": ("tb", dict(explore=LGGFNConfig())),
    "teacher": ("tb", dict(explore=TeacherConfig())),
    "SA-GFN": ("tb", dict(explore=SAGFNConfig())),
    "soft DQN": ("sdqn", dict()),
    "M-DQN": ("mdqn", dict()),
}


def ms_per_iteration(setting: dict, variant: tuple, iterations: int, seed: int) -> tuple[float, float]:
    """(ms per iteration, compile seconds) of one single-seed run through the runner."""
    from fluxrl.core.runner import RunConfig, run

    name, fields = variant
    algorithm, config = configure(name, batch_size=16, **setting, **fields)
    with tempfile.TemporaryDirectory() as out:
        run_config = RunConfig(iterations=iterations, seed=seed, out=out, log_every=iterations,
                               eval_every=iterations, checkpoint_every=iterations, progress=False)
        summary = run(algorithm, config, run_config).summary
    return 1e3 / summary["iterations_per_second"], summary["compile_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting (median)")
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", default=str(HERE / "results" / "gflownet_iteration_cost.json"))
    args = parser.parse_args()
    rows = []
    for name in args.settings:
        overrides, iterations = SETTINGS[name]
        variants = ["TB"] + [v for v in args.variants if v != "TB"]
        timings = {variant: [] for variant in variants}
        for repeat in range(args.repeats):  # interleaved, so slow drifts of the machine hit every variant alike
            for variant in variants:
                timings[variant].append(ms_per_iteration(overrides, VARIANTS[variant], iterations, repeat)[0])
        base = statistics.median(timings["TB"])
        print(f"\n{name}, batch 16, {iterations} iterations, median of {args.repeats} runs")
        for variant, runs in timings.items():
            median = statistics.median(runs)
            rows.append({"setting": name, "variant": variant, "ms_per_iteration": median,
                         "ratio_to_tb": median / base, "runs_ms": [round(t, 3) for t in runs]})
            print(f"  {variant:<9} {median:8.2f} ms   {median / base:5.2f}x TB   runs {rows[-1]['runs_ms']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
