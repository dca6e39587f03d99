"""Hypergrid TB, side by side: fluxrl vs gfnx vs torchgfn (each in its own virtual environment).

Measures, in one run on this machine: milliseconds per training iteration (median over repeats, compilation
reported apart) on hypergrid 4x8 and 2x64, batch 16, MLP 2x256; the exact TV each library reaches (fluxrl's
dynamic-programming metric applied to every library's dumped forward policy). Seed scaling: `seed_scaling.py`.

    bash benchmarks/peers/setup.sh            # once: the peers' virtual environments
    python benchmarks/gflownet_hypergrid.py   # prints a table and writes benchmarks/results/gflownet_hypergrid.json
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

import numpy as np

HERE = Path(__file__).resolve().parent
PEERS = {"gfnx": HERE / ".venvs" / "gfnx" / "bin" / "python", "torchgfn": HERE / ".venvs" / "torchgfn" / "bin" / "python"}
SPEED_SETTINGS = [  # (ndim, height, r0, iterations timed)
    (4, 8, 0.1, 1000),
    (2, 64, 1e-3, 300),
]
QUALITY = dict(ndim=4, height=8, r0=0.1, r1=0.5, r2=2.0)


def fluxrl_run(ndim, height, r0, iterations, num_seeds=1, seed=0, eval_every=None):
    """(summary, per-seed exact TV at each eval) of a fluxrl TB run through the normal runner."""
    from fluxrl.core.runner import RunConfig, run
    from fluxrl.envs.gflownet.configs import HypergridConfig
    from fluxrl.gflownet import balance
    from fluxrl.gflownet.networks import MLPConfig

    algorithm = balance.ALGORITHM
    config = balance.BalanceConfig(env=HypergridConfig(ndim=ndim, height=height, r0=r0, r1=0.5, r2=2.0), loss="tb",
                                   batch_size=16, network=MLPConfig(hidden=256, layers=2))
    every = eval_every or iterations
    with tempfile.TemporaryDirectory() as out:
        run_config = RunConfig(iterations=iterations, seed=seed, num_seeds=num_seeds, out=out, log_every=every,
                               eval_every=every, checkpoint_every=iterations, progress=False)
        result = run(algorithm, config, run_config)
        rows = [line.split(",") for line in (Path(out) / "metrics.csv").read_text().splitlines()]
    header = rows[0]
    tv_at = {}
    for row in rows[1:]:
        record = dict(zip(header, row))
        tv_at.setdefault(int(record["iteration"]), []).append(float(record["tv"]))
    return result.summary, tv_at


def peer_run(library, ndim, height, r0, iterations, dump_at=(), seed=0):
    """The peer's JSON result line, plus exact TVs computed here from its dumped forward policies."""
    from fluxrl.envs.gflownet.hypergrid import Hypergrid, hypergrid_params
    from fluxrl.gflownet.metrics import target_distribution, terminal_distribution_from_probabilities, tv

    with tempfile.TemporaryDirectory() as dump:
        command = [str(PEERS[library]), str(HERE / "peers" / f"{library}_hypergrid.py"), "--ndim", str(ndim),
                   "--height", str(height), "--r0", str(r0), "--r1", "0.5", "--r2", "2.0", "--batch-size", "16",
                   "--hidden", "256", "--layers", "2", "--iterations", str(iterations), "--seed", str(seed),
                   "--dump", dump, "--dump-at", ",".join(map(str, dump_at or [iterations]))]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        result = json.loads(output.strip().splitlines()[-1])
        env, params = Hypergrid(ndim, height), hypergrid_params("standard", r0, 0.5, 2.0)
        target = target_distribution(env, params)
        their_log_reward = np.load(Path(dump) / "log_reward.npy")
        result["reward_matches"] = bool(np.allclose(np.exp(their_log_reward) / np.exp(their_log_reward).sum(),
                                                    target, atol=1e-6))
        result["tv"] = {}
        for at in dump_at:
            forward = np.load(Path(dump) / f"pf_{at}.npy")
            result["tv"][at] = tv(terminal_distribution_from_probabilities(env, params, forward), target)
    return result


def speed(repeats: int, peers: list[str]) -> list[dict]:
    rows = []
    for ndim, height, r0, iterations in SPEED_SETTINGS:
        timings = {"fluxrl": [], **{p: [] for p in peers}}
        compile_seconds = {"fluxrl": [], **{p: [] for p in peers}}
        for repeat in range(repeats):
            summary, _ = fluxrl_run(ndim, height, r0, iterations, seed=repeat)
            timings["fluxrl"].append(1e3 / summary["iterations_per_second"])
            compile_seconds["fluxrl"].append(summary["compile_seconds"])
            for library in peers:
                # torchgfn's per-iteration median settles within a few hundred iterations; its runs are long.
                timed = min(iterations, 200) if library == "torchgfn" else iterations
                result = peer_run(library, ndim, height, r0, timed, seed=repeat)
                timings[library].append(result["ms_per_iteration"])
                compile_seconds[library].append(result["compile_seconds"])
        for library in timings:
            rows.append({"setting": f"{ndim}x{height}", "library": library,
                         "ms_per_iteration": statistics.median(timings[library]),
                         "runs_ms": [round(t, 3) for t in timings[library]],
                         "compile_seconds": statistics.median(compile_seconds[library])})
    return rows


def quality(peers: list[str], seeds: int) -> dict:
    _, tv_at = fluxrl_run(QUALITY["ndim"], QUALITY["height"], QUALITY["r0"], 5000, num_seeds=seeds, eval_every=1000)
    out = {"fluxrl": {"tv_2000": tv_at[2000], "tv_5000": tv_at[5000]}}
    for library in peers:
        tvs = [peer_run(library, QUALITY["ndim"], QUALITY["height"], QUALITY["r0"], 2000, dump_at=[2000],
                        seed=seed)["tv"][2000] for seed in range(seeds)]
        out[library] = {"tv_2000": tvs}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per library and setting (median)")
    parser.add_argument("--seeds", type=int, default=4, help="seeds for the TV comparison")
    parser.add_argument("--skip", nargs="*", default=[], choices=["gfnx", "torchgfn", "speed", "quality"])
    parser.add_argument("--out", default=str(HERE / "results" / "gflownet_hypergrid.json"))
    args = parser.parse_args()
    peers = [p for p in PEERS if p not in args.skip]
    for library in peers:
        if not PEERS[library].exists():
            sys.exit(f"{library} is not installed: run `bash benchmarks/peers/setup.sh` first (or --skip {library}).")
    import jax

    report = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                          "cpus": __import__("os").cpu_count(), "jax": jax.__version__},
              "date": time.strftime("%Y-%m-%d")}
    if "speed" not in args.skip:
        report["speed"] = speed(args.repeats, peers)
        print("\nms per iteration (median of %d runs), TB, batch 16, MLP 2x256" % args.repeats)
        for row in report["speed"]:
            print(f"  {row['setting']:>5}  {row['library']:<9} {row['ms_per_iteration']:8.2f} ms"
                  f"   compile {row['compile_seconds']:.1f} s   runs {row['runs_ms']}")
    if "quality" not in args.skip:
        report["quality"] = quality([p for p in peers if p == "gfnx"], args.seeds)
        print("\nexact TV, hypergrid 4x8 R0=0.1, TB, batch 16, %d seeds" % args.seeds)
        for library, values in report["quality"].items():
            for key, tvs in values.items():
                print(f"  {library:<9} {key}: mean {np.mean(tvs):.4f}  seeds {[round(t, 4) for t in tvs]}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
