"""Cost of a CNF update against an AWAC update, and the FLOP rate each reaches against the CPU's matmul rate.

Each update runs through the runner (one compiled scan, one seed, compilation timed apart) on a synthetic dataset
with halfcheetah's shapes (observation 17, action 6), each algorithm at its own published batch and sizes (AWAC:
CORL's batch 256, 3x256; CNF: the official batch 512, 3x256, three decodes through the flow per update). The
flows are freshly initialised (pre-training does not change an update's cost). FLOPs per update come from XLA's
cost analysis of the compiled update; the reference is the FLOP rate of a chain of 256x256 matrix products measured
in the same run. Repeats alternate the algorithms; medians.

    python benchmarks/cnf_updates.py
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp

from benchmarks.offline_updates import SHAPES, cpu_model, synthetic_dataset


def latent_data(preset: str, data, blocks: int | None = None):
    """The dataset with a freshly initialised flow of `preset` (optionally with `blocks` blocks) as the decoder."""
    import dataclasses

    from fluxrl.offline.flows import PRESETS, make_flow
    from fluxrl.offline.latent import make_latent_data

    config = PRESETS[preset] if blocks is None else dataclasses.replace(PRESETS[preset], blocks=blocks)
    flow = make_flow(config, data.obs_dim, data.action_dim, data.max_action, jax.random.PRNGKey(0),
                     data.actions[:1024], data.observations[:1024])
    return make_latent_data(data, flow)


def cases(data):
    """name -> (algorithm, config, data)."""
    from fluxrl.offline import awac, cnf

    return {"AWAC": (awac.ALGORITHM, awac.AWACConfig(), data),
            "CNF cpu": (cnf.ALGORITHM, cnf.CNFConfig(flow="cpu"), latent_data("cpu", data)),
            "CNF paper": (cnf.ALGORITHM, cnf.CNFConfig(flow="paper"), latent_data("paper", data))}


def updates_per_second(algorithm, config, data, iterations: int) -> float:
    """One seed's updates per second through the runner, compilation apart."""
    from fluxrl.core.runner import RunConfig, run

    with tempfile.TemporaryDirectory() as out:
        run_config = RunConfig(iterations=iterations, out=out, log_every=iterations, eval_every=iterations,
                               eval_at_start=False, checkpoint_every=iterations, progress=False)
        return run(algorithm, config, run_config, data=data).summary["updates_per_second"]


def flops_per_update(algorithm, config, data) -> float:
    """XLA's FLOP count of one compiled update of one seed."""
    state = algorithm.init(config, data, jax.random.PRNGKey(0))
    compiled = jax.jit(lambda s, d: algorithm.update(config, d, s)).lower(state, data).compile()
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    return float(analysis["flops"])


def paper_flops(data) -> float:
    """FLOPs of a CNF update with the `paper` flow. XLA counts a loop's body once, and the paper flow's blocks run
    in a scan, so the count is extrapolated from unrolled flows of 4 and 6 blocks (linear in the blocks)."""
    from fluxrl.offline import cnf
    from fluxrl.offline.flows import PRESETS

    config = cnf.CNFConfig(flow="paper")
    four, six = (flops_per_update(cnf.ALGORITHM, config, latent_data("paper", data, blocks)) for blocks in (4, 6))
    return six + (PRESETS["paper"].blocks - 6) * (six - four) / 2


def matmul_rate(size: int = 256, chain: int = 64, repeats: int = 20) -> float:
    """FLOP/s of a chain of size x size float32 matrix products on one device."""
    weights = jax.random.normal(jax.random.PRNGKey(0), (chain, size, size)) / size ** 0.5
    step = jax.jit(lambda x: jax.lax.scan(lambda h, w: (jnp.tanh(h @ w), None), x, weights)[0])
    x = jnp.ones((size, size))
    step(x).block_until_ready()
    began = time.perf_counter()
    for _ in range(repeats):
        x = step(x)
    x.block_until_ready()
    return 2 * size ** 3 * chain * repeats / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=1000, help="updates per timed run")
    args = parser.parse_args()
    from fluxrl.offline.common import make_offline_data

    data = make_offline_data(synthetic_dataset(**SHAPES))
    runs = cases(data)
    rates = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, (algorithm, config, case_data) in runs.items():
            rates[name].append(updates_per_second(algorithm, config, case_data, args.iterations))
            print(f"  {name}: {rates[name][-1]:.1f} updates/s", flush=True)
    flops = {name: flops_per_update(*case) for name, case in runs.items() if name != "CNF paper"}
    flops["CNF paper"] = paper_flops(data)
    # The reference: the FLOP rate of 256x256 products, the layer size of these networks. Not a hard bound: an
    # update's batched layers (256 or 512 rows) can run above it.
    bound = statistics.median(matmul_rate() for _ in range(3))
    median = {name: statistics.median(values) for name, values in rates.items()}
    print(f"\nhalfcheetah shapes, one seed, CPU ({cpu_model()}), median of {args.repeats}; "
          f"256x256 matmul chain: {bound / 1e9:.0f} GFLOP/s")
    print(f"{'update':<10} {'updates/s':>10} {'cost x AWAC':>12} {'GFLOP/update':>13} {'GFLOP/s':>8} {'of ref':>9}")
    for name, rate in median.items():
        achieved = rate * flops[name]
        print(f"{name:<10} {rate:>10.1f} {median['AWAC'] / rate:>11.2f}x {flops[name] / 1e9:>13.3f} "
              f"{achieved / 1e9:>8.1f} {achieved / bound:>8.0%}   runs " + ", ".join(f"{v:.1f}" for v in rates[name]))


if __name__ == "__main__":
    main()
