"""A2C on Jumanji Snake 6x6: the agent's throughput against the raw environment's, and a meta-update's cost.

1. Raw Snake: `num_envs` environments under uniformly random legal moves with automatic resets, one jitted scan
   of `vmap(step)` (the environment's own throughput, the yardstick).
2. Plain A2C through the runner at the same batch, one seed: the whole run's env steps per second (rollouts with
   the network, the updates and the runner's chunking; compilation apart).
3. The physical bound for (2): the reference network's arithmetic per env step (its policy's forward pass in the
   rollout; forward and backward passes in the update, counted as 2 multiply-adds of the convolutions and
   matrix products, whatever form they are computed in) at the rate of a 1024 x 1024 float32 matrix product
   measured in the same run, with the environment's own time added.
4. A K-step meta-update (K inner updates differentiated through, plus the meta-optimiser step) against K plain
   A2C updates, for K in {1, 2, 4, 8}, in forward mode (the default for one learned meta-parameter) and reverse
   mode: an iteration is 8 inner updates either way, so the cost ratio of one meta-update to one plain update is
   K x (meta iteration time / plain iteration time). The issue's bound: K + 2.

Repeats alternate the cases; medians.

    python benchmarks/meta_a2c.py [--num-envs 512] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import jax


def raw_steps_per_second(num_envs: int, num_steps: int = 200, calls: int = 5) -> float:
    """Env steps per second of random legal play, compilation apart."""
    from fluxrl.envs.jumanji import snake

    play = jax.jit(snake.random_play("snake-6x6", num_envs, num_steps))
    play(jax.random.PRNGKey(0)).block_until_ready()
    began = time.perf_counter()
    for i in range(calls):
        play(jax.random.PRNGKey(i + 1)).block_until_ready()
    return calls * num_envs * num_steps / (time.perf_counter() - began)


def matmul_flops_per_second(size: int = 1024, calls: int = 20) -> float:
    """float32 FLOP/s of a size x size matrix product on this machine (the arithmetic peak in practice)."""
    product = jax.jit(lambda a, b: a @ b)
    a = jax.random.normal(jax.random.PRNGKey(0), (size, size))
    product(a, a).block_until_ready()
    began = time.perf_counter()
    for _ in range(calls):
        product(a, a).block_until_ready()
    return calls * 2 * size ** 3 / (time.perf_counter() - began)


def network_flops_per_env_step(config) -> float:
    """The reference network's FLOPs per env step of A2C: the policy's forward pass on the observation in the
    rollout, and forward plus backward passes of both heads in the update ((T + 1) N observations for T N steps;
    the backward pass is twice the forward's products, less the first layer's input gradient)."""
    from fluxrl.envs.jumanji import snake

    rows, cols, depth = snake.board_shape(config.env)
    c = config.channels
    h1, w1 = -(-rows // 2), -(-cols // 2)
    conv1, conv2 = h1 * w1 * 4 * depth * c, h1 * w1 * 4 * c * c  # multiply-adds per observation
    features = h1 * w1 * c

    def mlp(sizes):
        return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))

    policy = mlp((features, *config.policy_hidden, 4))
    value = mlp((features, *config.value_hidden, 1))
    forward = conv1 + conv2 + policy + value
    update = forward + 2 * forward - conv1  # forward, then weight and input gradients (none for the input)
    per_step = 2 * ((conv1 + conv2 + policy) + update * (config.num_steps + 1) / config.num_steps)
    return float(per_step)


def run_rates(algorithm, config, iterations: int) -> tuple[float, float]:
    """(iterations per second, env steps per second) of one seed through the runner, compilation apart."""
    from fluxrl.core.runner import RunConfig, run

    with tempfile.TemporaryDirectory() as out:
        run_config = RunConfig(iterations=iterations, out=out, log_every=iterations, eval_every=iterations,
                               eval_at_start=False, checkpoint_every=iterations, progress=False)
        # No evaluation: the variance diagnostics are not part of an update's cost.
        summary = run(algorithm._replace(evaluate=None), config, run_config).summary
    return summary["iterations_per_second"], summary["env_steps_per_second"]


def cases(num_envs: int) -> dict:
    """name -> (algorithm, config, inner steps or 0 for plain A2C)."""
    from fluxrl.meta import a2c, metagrad

    agent = a2c.A2CConfig(num_envs=num_envs, updates_per_iteration=8)
    runs = {"A2C": (a2c.ALGORITHM, agent, 0)}
    for mode in ("forward", "reverse"):
        for steps in (1, 2, 4, 8):
            config = metagrad.MetaConfig(a2c=agent, inner_steps=steps, autodiff=mode)
            runs[f"K={steps} {mode}"] = (metagrad.ALGORITHM, config, steps)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-envs", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=20, help="iterations (8 updates each) per timed run")
    parser.add_argument("--json", default="", help="also write the medians to this file")
    args = parser.parse_args()
    runs = cases(args.num_envs)
    raw, peak, rates = [], [], {name: [] for name in runs}
    for _ in range(args.repeats):
        raw.append(raw_steps_per_second(args.num_envs))
        peak.append(matmul_flops_per_second())
        print(f"  raw Snake: {raw[-1]:,.0f} env steps/s; matrix products {peak[-1] / 1e9:.0f} GFLOP/s", flush=True)
        for name, (algorithm, config, _) in runs.items():
            rates[name].append(run_rates(algorithm, config, args.iterations))
            print(f"  {name}: {rates[name][-1][1]:,.0f} env steps/s", flush=True)
    raw_median, peak_median = statistics.median(raw), statistics.median(peak)
    flops = network_flops_per_env_step(runs["A2C"][1])
    bound = 1.0 / (1.0 / raw_median + flops / peak_median)
    median = {name: (statistics.median(r[0] for r in values), statistics.median(r[1] for r in values))
              for name, values in rates.items()}
    plain = median["A2C"][0]
    print(f"\nSnake 6x6, {args.num_envs} envs x 5 steps, one seed, {jax.devices()[0].platform}, median of "
          f"{args.repeats}")
    print(f"raw environment: {raw_median:,.0f} env steps/s")
    print(f"plain A2C: {median['A2C'][1]:,.0f} env steps/s = {median['A2C'][1] / raw_median:.3f} x raw "
          "(the issue asks >= 0.5)")
    print(f"physical bound: {flops / 1e3:,.0f} kFLOP of network per env step at {peak_median / 1e9:.0f} GFLOP/s, "
          f"with the environment's time: {bound:,.0f} env steps/s = {bound / raw_median:.3f} x raw; A2C reaches "
          f"{median['A2C'][1] / bound:.2f} of it")
    print(f"{'case':<14} {'env steps/s':>12} {'meta-update / plain update':>27} {'bound K+2':>10}")
    results = {"num_envs": args.num_envs, "raw_env_steps_per_second": raw_median,
               "matmul_flops_per_second": peak_median, "network_flops_per_env_step": flops,
               "bound_env_steps_per_second": bound,
               "a2c_env_steps_per_second": median["A2C"][1], "meta_update_cost": {}}
    for name, (_, _, steps) in runs.items():
        if steps:
            cost = steps * plain / median[name][0]
            results["meta_update_cost"][name] = cost
            print(f"{name:<14} {median[name][1]:>12,.0f} {cost:>26.2f}x {steps + 2:>9}x")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=2)


if __name__ == "__main__":
    main()
