"""Iterations per second of a run whose seed count the cores do not divide: one CPU device per seed (what the command
line chooses, `fluxrl.core.devices.devices_for`) against one device per core with padding seeds (the layout before).

Each run is a `fluxrl train` command in its own process (the device count is fixed when JAX starts), the layouts
alternate within each repeat so they share the machine's state, and the medians are printed. AWAC needs the
hopper-medium dataset (`fluxrl data make hopper-medium`); without it only the GFlowNet rows run.

    python benchmarks/seed_devices.py --repeats 3     # prints a table, writes benchmarks/results/seed_devices.json
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

HERE = Path(__file__).resolve().parent
WORKLOADS = {
    "AWAC hopper-medium": ["train", "offline", "awac", "--dataset", "hopper-medium", "--iterations", "1500",
                           "--eval-every", "100000", "--no-eval-at-start"],
    "TB hypergrid 4x8": ["train", "gflownet", "--ndim", "4", "--height", "8", "--iterations", "3000",
                         "--eval-every", "100000", "--no-eval-at-start"],
}


def iterations_per_second(args: list[str], num_seeds: int, devices: int | None) -> float:
    """The run's iterations per second (compilation excluded); `devices` None: the command line's own choice."""
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_NUM_CPU_DEVICES", "XLA_FLAGS")}
    if devices is not None:
        env["JAX_NUM_CPU_DEVICES"] = str(devices)
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "fluxrl.cli", *args, "--num-seeds", str(num_seeds), "--out", out,
                   "--overwrite", "--no-progress"]
        subprocess.run(command, env=env, check=True, capture_output=True, text=True)
        return json.loads((Path(out) / "summary.json").read_text())["iterations_per_second"]


def has_dataset(name: str) -> bool:
    """Whether `fluxrl data make NAME` has been run."""
    from fluxrl.offline.datasets import default_data_dir

    return (Path(default_data_dir()) / f"{name}.hdf5").is_file()


def main() -> None:
    """Time every workload and seed count under both layouts; print the medians and write them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 5])
    parser.add_argument("--cores", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    workloads = {name: argv for name, argv in WORKLOADS.items()
                 if "--dataset" not in argv or has_dataset(argv[argv.index("--dataset") + 1])}
    rows = []
    for name, argv in workloads.items():
        for seeds in args.seeds:
            times: dict[str, list[float]] = {"per seed": [], "per core": []}
            for _ in range(args.repeats):
                times["per seed"].append(iterations_per_second(argv, seeds, None))
                times["per core"].append(iterations_per_second(argv, seeds, args.cores))
            medians = {layout: statistics.median(values) for layout, values in times.items()}
            rows.append(dict(workload=name, seeds=seeds, runs=times, medians=medians,
                             speedup=medians["per seed"] / medians["per core"]))
            print(f"{name:20s} {seeds} seeds: one device per seed {medians['per seed']:7.1f} it/s, one per core "
                  f"{medians['per core']:7.1f} it/s ({rows[-1]['speedup']:.2f}x)", flush=True)
    result = dict(machine=platform.processor() or platform.machine(), cores=args.cores, repeats=args.repeats,
                  rows=rows)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "seed_devices.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
