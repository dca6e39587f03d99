"""Peer benchmark: d3rlpy TD3+BC and IQL updates per second on CPU, on a synthetic halfcheetah-shaped dataset.

Built the way d3rlpy's own scripts do (`reproductions/offline/td3_plus_bc.py`, `iql.py`): an `MDPDataset`,
`TD3PlusBCConfig` / `IQLConfig` with 2x256 `VectorEncoderFactory` encoders for every network and batch 256,
`create(device="cpu:0")`, `build_with_dataset`. The timed step is one iteration of d3rlpy's `fit` loop:
`dataset.sample_transition_batch(batch_size)` then `algo.update(batch)`; the update alone (on batches sampled
beforehand) is timed too. Torch eager mode (d3rlpy compiles graphs on CUDA only), torch threads at their default
unless --threads is given.

Run with the d3rlpy venv's python (see benchmarks/offline_updates.py); prints one JSON line.
"""

import argparse
import json
import time
from importlib.metadata import version

import d3rlpy
import numpy as np
import torch
from d3rlpy.models.encoders import VectorEncoderFactory


def synthetic_dataset(size: int, obs_dim: int, action_dim: int, episode_length: int, seed: int):
    """An MDPDataset of `size` random transitions in episodes of `episode_length` (cut by time limits)."""
    rng = np.random.default_rng(seed)
    timeouts = np.zeros(size, np.float32)
    timeouts[episode_length - 1::episode_length] = 1.0
    timeouts[-1] = 1.0
    return d3rlpy.dataset.MDPDataset(
        observations=rng.standard_normal((size, obs_dim), dtype=np.float32),
        actions=rng.uniform(-1.0, 1.0, (size, action_dim)).astype(np.float32),
        rewards=rng.standard_normal(size, dtype=np.float32), terminals=np.zeros(size, np.float32),
        timeouts=timeouts)


def make_algorithm(name: str, hidden: int, depth: int, batch_size: int):
    """A d3rlpy TD3+BC or IQL on CPU with `depth` x `hidden` encoders for every network."""
    encoder = VectorEncoderFactory(hidden_units=[hidden] * depth)
    if name == "td3bc":
        config = d3rlpy.algos.TD3PlusBCConfig(batch_size=batch_size, actor_encoder_factory=encoder,
                                              critic_encoder_factory=encoder)
    else:
        config = d3rlpy.algos.IQLConfig(batch_size=batch_size, actor_encoder_factory=encoder,
                                        critic_encoder_factory=encoder, value_encoder_factory=encoder)
    return config.create(device="cpu:0")


def updates_per_second(step, warmup: int, updates: int) -> float:
    """Calls of `step()` per second over `updates` calls, after `warmup` untimed calls."""
    for _ in range(warmup):
        step()
    began = time.perf_counter()
    for _ in range(updates):
        step()
    return updates / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", choices=["td3bc", "iql"], default="td3bc")
    parser.add_argument("--size", type=int, default=200_000, help="transitions in the dataset")
    parser.add_argument("--obs-dim", type=int, default=17)
    parser.add_argument("--action-dim", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--updates", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads; 0 = torch default")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    d3rlpy.seed(args.seed)
    dataset = synthetic_dataset(args.size, args.obs_dim, args.action_dim, 1000, args.seed)
    algo = make_algorithm(args.algo, args.hidden, args.depth, args.batch_size)
    algo.build_with_dataset(dataset)

    fit_step = lambda: algo.update(dataset.sample_transition_batch(args.batch_size))
    with_sampling = updates_per_second(fit_step, args.warmup, args.updates)
    batches = [dataset.sample_transition_batch(args.batch_size) for _ in range(args.updates)]
    remaining = iter(batches)
    update_only = updates_per_second(lambda: algo.update(next(remaining)), 0, args.updates)
    print(json.dumps({
        "library": "d3rlpy", "version": version("d3rlpy"), "torch": torch.__version__, "algo": args.algo,
        "threads": torch.get_num_threads(), "batch_size": args.batch_size, "hidden": [args.hidden] * args.depth,
        "updates": args.updates, "updates_per_second": round(with_sampling, 2),
        "update_only_per_second": round(update_only, 2),
    }))


if __name__ == "__main__":
    main()
