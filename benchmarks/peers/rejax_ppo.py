"""Peer benchmark: rejax's PPO on gymnax Pendulum-v1, a whole training run, env steps per second on CPU.

Built the way rejax's README does: `PPO.create(**config)` with the values of its tuned `configs/gymnax/pendulum.yaml`
(passed in as flags), then `jax.jit(jax.vmap(algo.train))` over one PRNG key per seed. rejax's `train` evaluates the
policy (128 episodes) every `eval_freq` env steps; here `eval_freq` is the whole run and the evaluation callback is
a no-op, so the timed program is training only, like fluxrl's PPO run, which evaluates nothing. The run's length is
`total_timesteps`, rounded up by rejax to whole iterations of num_envs x num_steps. Compilation is timed apart
(`lower(...).compile()`), then the compiled program runs `--repeats` times; after the last, rejax's own evaluation
(128 episodes of the sampled policy, clipped to the action bounds) gives each seed's return.

Run with the rejax venv's python (see benchmarks/onpolicy_ppo.py); prints one JSON line.
"""

import argparse
import json
import math
import time
from importlib.metadata import version

import jax
import numpy as np
from rejax import PPO


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-seeds", type=int, default=2)
    parser.add_argument("--total-steps", type=int, default=150_000, help="env steps of one seed's run")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs of the compiled program")
    parser.add_argument("--num-envs", type=int, default=100)
    parser.add_argument("--num-steps", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--minibatches", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--max-grad-norm", type=float, default=10.0)
    parser.add_argument("--gamma", type=float, default=0.995)
    parser.add_argument("--gae-lambda", type=float, default=0.95)
    parser.add_argument("--clip-eps", type=float, default=0.2)
    parser.add_argument("--entropy-coef", type=float, default=0.0)
    parser.add_argument("--value-coef", type=float, default=0.5)
    parser.add_argument("--activation", default="swish")
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    config = dict(env="Pendulum-v1", agent_kwargs=dict(activation=args.activation, hidden_layer_sizes=args.hidden),
                  num_envs=args.num_envs, num_steps=args.num_steps, num_epochs=args.epochs,
                  num_minibatches=args.minibatches, learning_rate=args.lr, max_grad_norm=args.max_grad_norm,
                  total_timesteps=args.total_steps, eval_freq=args.total_steps, skip_initial_evaluation=True,
                  gamma=args.gamma, gae_lambda=args.gae_lambda, clip_eps=args.clip_eps, ent_coef=args.entropy_coef,
                  vf_coef=args.value_coef, normalize_observations=True)
    algo = PPO.create(**config)
    evaluate = algo.eval_callback
    algo = algo.replace(eval_callback=lambda algo, ts, rng: ())
    keys = jax.random.split(jax.random.PRNGKey(args.seed), args.num_seeds)
    train = jax.jit(jax.vmap(algo.train))

    began = time.perf_counter()
    compiled = train.lower(keys).compile()
    compile_seconds = time.perf_counter() - began
    run_seconds = []
    for _ in range(args.repeats):
        began = time.perf_counter()
        state, _ = jax.block_until_ready(compiled(keys))
        run_seconds.append(time.perf_counter() - began)

    iterations = math.ceil(args.total_steps / (args.num_envs * args.num_steps))
    steps = iterations * args.num_envs * args.num_steps * args.num_seeds
    _, returns = jax.jit(jax.vmap(lambda ts, key: evaluate(algo, ts, key)))(state, keys)
    print(json.dumps({
        "library": f"rejax {version('rejax')} (gymnax {version('gymnax')}, jax {jax.__version__})",
        "seeds": f"{args.num_seeds} vmapped in one jit", "devices": len(jax.devices()),
        "iterations": iterations, "env_steps": steps, "compile_seconds": compile_seconds, "run_seconds": run_seconds,
        "env_steps_per_second": [steps / s for s in run_seconds],
        "eval_return": [float(r) for r in np.asarray(returns).mean(axis=-1)]}))


if __name__ == "__main__":
    main()
