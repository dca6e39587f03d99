"""Wall time of several seeds in one process against one seed, for TB, LGGFN and M-DQN on hypergrid 4x8.

The runner splits the seeds over one CPU device per core and loops over each device's seeds; the previous
layout vmapped every seed on one device (`--layouts vmap` times it directly, outside the runner). Every
variant, seed count and layout is timed in the same run, alternating, so they share the machine's state.

    python benchmarks/seed_scaling.py            # prints a table, writes benchmarks/results/seed_scaling.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIANTS = {"TB": ("tb", {}), "LGGFN": ("tb", {"explore": "lggfn"}), "M-DQN": ("mdqn", {})}  # algorithm, fields


def config_of(variant: tuple):
    """(algorithm, config) of a variant on hypergrid 4x8 (R0 = 0.1), batch 16."""
    from fluxrl.envs.gflownet.configs import HypergridConfig
    from fluxrl.gflownet.algorithms import configure
    from fluxrl.gflownet.lggfn import LGGFNConfig

    name, fields = variant
    explore = {"explore": LGGFNConfig()} if fields.get("explore") == "lggfn" else {}
    return configure(name, env=HypergridConfig(ndim=4, height=8, r0=0.1), batch_size=16, **explore)


def runner_ms(variant: dict, num_seeds: int, iterations: int) -> float:
    """Milliseconds per iteration (all seeds together, compilation excluded) of one run through the runner."""
    from fluxrl.core.runner import RunConfig, run
    algorithm, config = config_of(variant)
    with tempfile.TemporaryDirectory() as out:
        run_config = RunConfig(iterations=iterations, num_seeds=num_seeds, out=out, log_every=iterations,
                               eval_every=iterations, eval_at_start=False, checkpoint_every=iterations,
                               progress=False)
        summary = run(algorithm, config, run_config).summary
    return 1e3 / summary["iterations_per_second"]


def vmap_ms(variant: dict, num_seeds: int, iterations: int) -> float:
    """Milliseconds per iteration of the previous layout: every seed vmapped on one device."""
    import jax
    import numpy as np

    from fluxrl.core.seeds import SEED_AXIS
    algorithm, config = config_of(variant)
    data = algorithm.make_data(config) if algorithm.make_data else None
    keys = jax.vmap(jax.random.PRNGKey)(np.arange(num_seeds))
    device = jax.devices()[0]
    keys, data = jax.device_put((keys, data), device)
    state = jax.jit(jax.vmap(lambda k, d: algorithm.init(config, d, k), (0, None), axis_name=SEED_AXIS))(keys, data)
    scan = lambda s, d: jax.lax.scan(lambda c, _: algorithm.update(config, d, c), s, None, length=iterations)
    chunk = jax.jit(jax.vmap(scan, (0, None), axis_name=SEED_AXIS)).lower(state, data).compile()
    state = jax.block_until_ready(chunk(state, data)[0])  # warm up
    began = time.perf_counter()
    jax.block_until_ready(chunk(state, data))
    return 1e3 * (time.perf_counter() - began) / iterations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per cell (median)")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 4, 16])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--layouts", nargs="*", default=["runner"], choices=["runner", "vmap"])
    parser.add_argument("--out", default=str(HERE / "results" / "seed_scaling.json"))
    args = parser.parse_args()
    timers = {"runner": runner_ms, "vmap": vmap_ms}
    cells = [(v, layout, n) for v in args.variants for layout in args.layouts for n in args.seeds]
    times = {cell: [] for cell in cells}
    for _ in range(args.repeats):
        for variant, layout, seeds in cells:
            times[(variant, layout, seeds)].append(timers[layout](VARIANTS[variant], seeds, args.iterations))
            print(f"  {variant} {layout} {seeds} seeds: {times[(variant, layout, seeds)][-1]:.2f} ms", flush=True)
    rows = []
    print(f"hypergrid 4x8, batch 16, {args.iterations} iterations per run, median of {args.repeats}")
    print(f"{'variant':<8} {'layout':<7} {'seeds':>5} {'ms/iteration':>13} {'x one seed':>11}   runs")
    for variant, layout, seeds in cells:
        median = statistics.median(times[(variant, layout, seeds)])
        one = statistics.median(times[(variant, layout, args.seeds[0])])
        rows.append(dict(variant=variant, layout=layout, seeds=seeds, ms_per_iteration=median,
                         ratio_to_one_seed=median / one, runs=times[(variant, layout, seeds)]))
        runs = ", ".join(f"{t:.2f}" for t in times[(variant, layout, seeds)])
        print(f"{variant:<8} {layout:<7} {seeds:>5} {median:>13.2f} {median / one:>10.2f}x   {runs}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": platform.processor() or platform.machine(),
                                          "iterations": args.iterations, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
