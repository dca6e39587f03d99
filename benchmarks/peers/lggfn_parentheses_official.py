"""The official LGGFN balanced-parentheses experiment (Idriss-Malek/Loss-Guided-GFN), TB or LGGFN, with checkpoints.

Runs `main(args)` of the official `examples/balanced_parentheses.py` (imported, unedited) with the example's own
argparse defaults (balanced_parentheses.py:172-196): BalancedParentheses(seq_size=32, word_size=1), GPT-2 policy
(n_embd 128, n_layer 2, n_head 4, :72-97), TBGFlowNetV2(logZ=0) (:99-100), batch 16, lr 1e-3, lr_Z 0.1 (:176-179),
lamda 1.0 (:191), set_seed(seed) (:69), then train_tb (:113-122, src/algos/tb.py) or train_lggfn (:123-134,
src/algos/lggfn.py), then the example's own metric on the trained main model (:153-166). Added here, nothing else:
- `--algo`, `--iterations`, `--seed` passed into the example's args (its own options);
- `torch.set_num_threads(--threads)` (default 1);
- metric checkpoints: a global optimizer step post-hook counts steps of the main optimizer (the one holding
  mainGFN.logZ); after step k in `--checkpoints` (k < iterations) it runs a copy of :153-165 (1000 x batch_size
  sampled terminating states, `env.is_balanced_parentheses`, distinct balanced rows) with the torch / random /
  numpy RNG states saved and restored and every module's train/eval flag restored, so training is unchanged.
  The value at k = iterations is the example's own return value of main();
- timing: wall and CPU (time.process_time) seconds of the training call and of each iteration (main-optimizer
  step to main-optimizer step), checkpoint evaluations excluded;
- tqdm prints at most every 30 s (TQDM_MININTERVAL), to keep logs short.

Run from the official repository root with the official venv (docs/official_runs.md, "Installation"):

    cd OFFICIAL/Loss-Guided-GFN && OMP_NUM_THREADS=1 OFFICIAL_VENV/bin/python \
        FLUXRL/benchmarks/peers/lggfn_parentheses_official.py --algo {tb,lggfn} --iterations 1000 --seed 0 \
        --checkpoints 500,1000 --out FLUXRL/benchmarks/results/lggfn_parentheses_official_ALGO_seed0.json

(OFFICIAL: where the repository was cloned; OFFICIAL_VENV: its venv; FLUXRL: this repository.)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import subprocess
import sys
import time
from importlib.metadata import version

os.environ.setdefault("TQDM_MININTERVAL", "30")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.optim.optimizer import register_optimizer_step_post_hook  # noqa: E402

# balanced_parentheses.py:172-196, the example's argparse defaults (sagfn-only options omitted).
EXAMPLE_DEFAULTS = dict(seq_size=32, word_size=1, batch_size=16, iterations=1000, lr=1e-3, lr_Z=1e-1,
                        device_str="cpu", algo="tb", lamda=1.0, n_embd=128, n_layer=2, n_head=4, seed=0)


def load_example():
    """Import examples/balanced_parentheses.py from the current directory (the official repository root)."""
    path = os.path.join(os.getcwd(), "examples", "balanced_parentheses.py")
    if not os.path.exists(path):
        sys.exit(f"{path} not found: run from the root of Idriss-Malek/Loss-Guided-GFN")
    spec = importlib.util.spec_from_file_location("official_balanced_parentheses", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def example_metric(mainGFN, env, batch_size):
    """balanced_parentheses.py:153-165 (rate of balanced samples, number of distinct balanced samples)."""
    is_balanced, state_tensors = [], []
    with torch.no_grad():
        for _ in range(1000):
            trajectories = mainGFN.sample_trajectories(env=env, n=batch_size, save_logprobs=False)
            last_states = trajectories.terminating_states.tensor.cpu()
            is_balanced.append(env.is_balanced_parentheses(last_states))
            state_tensors.append(last_states)
        is_balanced = torch.cat(is_balanced, dim=0)
        state_tensors = torch.cat(state_tensors, dim=0)
        rate = torch.mean(is_balanced.float())
        unique = torch.unique(state_tensors[is_balanced], dim=0).shape[0]
    return rate.item(), unique


def read_only_metric(mainGFN, env, batch_size):
    """example_metric in eval mode, leaving the RNG states and every module's mode as they were."""
    rng = (torch.get_rng_state(), random.getstate(), np.random.get_state())
    modes = [(m, m.training) for m in mainGFN.modules()]
    mainGFN.eval()  # as the example does before its metric (:153)
    try:
        return example_metric(mainGFN, env, batch_size)
    finally:
        for m, training in modes:
            m.training = training
        torch.set_rng_state(rng[0])
        random.setstate(rng[1])
        np.random.set_state(rng[2])


def clocks():
    return time.perf_counter(), time.process_time()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", choices=["tb", "lggfn"], required=True)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoints", default="250,500,1000", help="main-optimizer steps to evaluate after")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True, help="JSON file to write")
    cli = parser.parse_args()
    checkpoints = sorted({int(c) for c in cli.checkpoints.split(",") if c})
    if not checkpoints or checkpoints[-1] > cli.iterations or checkpoints[0] < 1:
        parser.error("checkpoints must lie in 1..iterations")

    torch.set_num_threads(cli.threads)
    example = load_example()
    args = argparse.Namespace(**{**EXAMPLE_DEFAULTS, "algo": cli.algo, "iterations": cli.iterations, "seed": cli.seed})

    run = {"mainGFN": None, "env": None, "step": 0, "eval_wall": 0.0, "eval_cpu": 0.0, "results": [],
           "iter_wall": [], "iter_cpu": []}

    def record(step, rate, unique, wall, cpu):
        row = {"iteration": step, "unique_balanced": unique, "rate_balanced": rate,
               "logZ": run["mainGFN"].logZ.item(), "eval_wall_s": wall, "eval_cpu_s": cpu}
        run["results"].append(row)
        print(json.dumps(row), flush=True)

    def step_hook(optimizer, *_):
        main_gfn = run["mainGFN"]
        if main_gfn is None or not any(p is main_gfn.logZ for g in optimizer.param_groups for p in g["params"]):
            return  # not the main optimizer (the aux optimizer, or the example's unused ones at :102-110)
        run["step"] += 1
        w0, c0 = clocks()
        run["iter_wall"].append(w0 - run["last"][0])
        run["iter_cpu"].append(c0 - run["last"][1])
        run["last"] = (w0, c0)
        if run["step"] in checkpoints and run["step"] < cli.iterations:
            rate, unique = read_only_metric(main_gfn, run["env"], args.batch_size)
            w1, c1 = clocks()
            run["eval_wall"] += w1 - w0
            run["eval_cpu"] += c1 - c0
            record(run["step"], rate, unique, w1 - w0, c1 - c0)
            run["last"] = (w1, c1)  # the next iteration's time excludes this evaluation

    def timed(train):
        def wrapper(**kwargs):
            run["mainGFN"], run["env"] = kwargs["mainGFN"], kwargs["env"]
            run["t0"] = run["last"] = clocks()
            train(**kwargs)
            run["t1"] = clocks()
        return wrapper

    example.train_tb = timed(example.train_tb)
    example.train_lggfn = timed(example.train_lggfn)
    handle = register_optimizer_step_post_hook(step_hook)

    rate, count = example.main(args)
    t2 = clocks()
    handle.remove()
    assert run["step"] == cli.iterations, (run["step"], cli.iterations)
    record(cli.iterations, rate.item(), count, t2[0] - run["t1"][0], t2[1] - run["t1"][1])

    train_wall = run["t1"][0] - run["t0"][0] - run["eval_wall"]
    train_cpu = run["t1"][1] - run["t0"][1] - run["eval_cpu"]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    out = {
        "algo": cli.algo, "iterations": cli.iterations, "seed": cli.seed, "threads": cli.threads,
        "settings": {k: v for k, v in vars(args).items()},
        "checkpoints": run["results"],  # the last row (k = iterations) is always the example's own output
        "train_wall_s": train_wall, "train_cpu_s": train_cpu,
        "wall_s_per_iteration": train_wall / cli.iterations, "cpu_s_per_iteration": train_cpu / cli.iterations,
        "iteration_wall_s": run["iter_wall"], "iteration_cpu_s": run["iter_cpu"],  # main-step to main-step
        "final_logZ": run["mainGFN"].logZ.item(),
        "main_param_abs_sum": float(sum(p.detach().double().abs().sum() for p in run["mainGFN"].parameters())),
        "official_commit": commit,
        "versions": {"python": sys.version.split()[0],
                     **{name: version(name) for name in ("torch", "torchgfn", "transformers", "numpy")}},
    }
    os.makedirs(os.path.dirname(os.path.abspath(cli.out)), exist_ok=True)
    with open(cli.out, "w") as f:
        json.dump(out, f, indent=2)
    print(json.dumps({k: out[k] for k in ("algo", "iterations", "train_cpu_s", "cpu_s_per_iteration",
                                          "wall_s_per_iteration", "final_logZ")}), flush=True)


if __name__ == "__main__":
    main()
