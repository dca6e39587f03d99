"""`fluxrl reproduce fpo`: FPO against Gaussian PPO (McAllister et al. 2025) under a reduced CPU protocol.

Studies: (a) the grid world `two_walls`, where the claim is about the shape of the policy: at saddle states FPO's
actions split between the two goals and its rollouts from one start reach both, where a Gaussian commits to one;
(b) continuous control, where the claim is about return: FPO matches or beats a tuned Gaussian PPO, and its
ablations go the paper's way (n_mc 8 > 4 > 1; the eps-MSE loss over the plain velocity loss). The report opens with
the protocol table against the official code (akanazawa/fpo) and prints the paper's numbers beside ours.
"""

from __future__ import annotations

from pathlib import Path

from fluxrl.experiments.common import (Study, final_values, method_dir, rebuild_from_runs, run_reproduction,
                                       store_run_facts, wall_time_line)

PROTOCOL = "cpu-reduced-1"
PROTOCOLS = (PROTOCOL,)
OFFICIAL = "akanazawa/fpo"
GRID = "gridworld"
# method -> (algorithm, FPO config changes); the ablations change one FPO setting each
METHODS = {"FPO": ("fpo", {}), "Gaussian PPO": ("ppo", {}), "FPO n_mc 1": ("fpo", dict(n_mc=1)),
           "FPO n_mc 4": ("fpo", dict(n_mc=4)), "FPO u-output": ("fpo", dict(output_mode="u"))}
ABLATIONS = ("FPO n_mc 1", "FPO n_mc 4", "FPO u-output")
GRID_ITERATIONS = 100  # 16 envs x 128 steps each: 204,800 env steps per seed
CONTROL = {"pendulum": 100, "dmc-cartpole-balance": 125, "dmc-reacher-easy": 125}  # iterations: 1M env steps each
ABLATION_ENV = "pendulum"

STUDIES = (
    Study(GRID, "grid world two_walls: saddle-state actions and goals from one start", dict(env="gridworld-two-walls"),
          ("FPO", "Gaussian PPO"), iterations=GRID_ITERATIONS, eval_every=25,
          curves=("episode_return", "saddle_split", "goals_reached"), headline="saddle_split", lower_is_better=False),
) + tuple(
    Study(env, f"{env}: training episodes' return", dict(env=env),
          ("FPO", "Gaussian PPO") + (ABLATIONS if env == ABLATION_ENV else ()), iterations=iterations,
          eval_every=iterations, curves=("episode_return",), headline="episode_return", lower_is_better=False,
          eval_at_start=False)
    for env, iterations in CONTROL.items())

# The paper's numbers (arXiv 2507.21053; 10 MuJoCo Playground DM Control tasks, 5 seeds, 60M steps): mean return.
PAPER = {"FPO": 759.3, "Gaussian PPO (tuned)": 667.8, "Gaussian PPO (default)": 577.2, "DPPO-style denoising MDP": 652.5,
         "FPO n_mc 4": 731.2, "FPO n_mc 1": 691.6, "FPO u-output": 665.0}
NOTEBOOK = {"FPO": 877.8, "Gaussian PPO": 560.7}  # the public CheetahRun notebook at 60 outer steps

CLAIMS = {
    "bimodal": "at saddle states FPO's actions split between both goals, Gaussian PPO's do not (saddle_split)",
    "goals": "from one start, FPO's rollouts reach both goals, Gaussian PPO's one (goals_reached)",
    "return": "FPO matches or beats Gaussian PPO (final training return)",
    "n_mc 8 vs 4": "n_mc 8 beats n_mc 4 (paper 759.3 vs 731.2)",
    "n_mc 8 vs 1": "n_mc 8 beats n_mc 1 (paper 759.3 vs 691.6)",
    "eps vs u": "the eps-MSE loss beats the plain velocity loss (paper 759.3 vs 665.0)",
}
PAIRS = {"bimodal": ("FPO", "Gaussian PPO", "saddle_split"), "goals": ("FPO", "Gaussian PPO", "goals_reached"),
         "return": ("FPO", "Gaussian PPO", "episode_return"), "n_mc 8 vs 4": ("FPO", "FPO n_mc 4", "episode_return"),
         "n_mc 8 vs 1": ("FPO", "FPO n_mc 1", "episode_return"),
         "eps vs u": ("FPO", "FPO u-output", "episode_return")}

# setting | official code (path:line) | ours | why they differ ("" where they agree)
PROTOCOL_TABLE = (
    ("grid world", "gridworld/utils/gridworld.py (25x25, +20 goal, -10 death, 100 steps)",
     "fluxrl/envs/control/gridworld.py, checked step for step against it", "starts never inside a wall; a goal at "
     "step 100 is a termination only (its docstring)"),
    ("time convention", "grid world: noise at t = 0 (diffusion_policy.py:93); Playground: noise at t = 1 "
     "(playground/src/flow_policy/fpo.py:185)", "the paper's: noise at tau = 0, action at 1", "one convention; a "
     "test shows the other gives the same losses and ratios"),
    ("grid-world policy", "64-64 MLP on [obs, x_t, t] (models/network.py), raw action", "64-64 ReLU MLP on [obs, "
     "x_tau, 8-dim Fourier(tau)], output x 0.25, action tanh(x_1)", "one FPO network for every task (Playground's "
     "embedding, scale and squashing)"),
    ("grid-world batch", "2,048 steps of whole episodes per iteration, 10 epochs (main.py:121-124), 6 minibatches",
     "16 envs x 128 steps, 10 epochs x 8 minibatches", "vectorised rollouts; 6 does not divide 2,048"),
    ("grid-world optimiser", "Adam 3e-4 annealed over 200M steps, gamma 0.99, GAE 0.98, grad-norm 0.5 (main.py:"
     "123-126, models/ppo.py)", "the same, constant lr", "annealing over 200M steps is constant over our 205k"),
    ("FPO ratio samples", "grid world: n_mc 50, t uniform, velocity loss, per-pair differences clamped to +-3 then "
     "averaged (main.py:131, models/fpo.py); Playground: n_mc 8, t on the sampler grid, eps loss, losses averaged "
     "before exp (fpo.py:23-33)", "Playground's everywhere: n_mc 8, grid t, eps loss, averaged before exp",
     "one FPO; the Playground settings are the paper's best (its ablation)"),
    ("clip epsilon", "grid world 0.2 (main.py:126); Playground FPO 0.05 (fpo.py:44)", "FPO 0.05, Gaussian PPO 0.2",
     "0.2 collapsed FPO's saddle split in 2 of 4 seeds here (0.05: 0 of 4)"),
    ("grid-world budget", "200M steps requested (main.py:64), stopped by hand", "100 iterations = 204,800 env steps "
     "per seed", "budget: both methods reach the goal from every start (return 20) by iteration 50"),
    ("continuous control", "10 Playground DM Control tasks, 2,048 envs x 30 steps x 32 minibatches per update, 60M "
     "steps, 5 seeds (fpo.py:46-56)", "Playground CartpoleBalance and ReacherEasy (impl jax) with 64 envs x 125 steps, "
     "1M steps; gymnax Pendulum-v1 with rejax's sizes (100 envs x 100 steps), 1M steps; 3 seeds", "CPU budget: the "
     "official setting is about 10 h per task per seed here"),
    ("Gaussian PPO", "Brax PPO tuned per task (train_ppo.ipynb)", "fluxrl's PPO: rejax's tuned Pendulum config; on "
     "DM Control the same with 64 x 125 rollouts and entropy bonus 0.01", "one set of shared settings per task "
     "(fluxrl/onpolicy/tuned.py)"),
    ("FPO on continuous control", "lr 3e-4, clip 0.05, 4 x 32 SiLU velocity network, reward x 10 (fpo.py:23-56)",
     "lr 3e-4, clip 0.1 (Pendulum: 64-64 network), reward x 1, the shared sizes", "at these small batches clip 0.05 "
     "learned slower on Pendulum; lr 1e-3 with clip 0.2 diverged"),
    ("DM Control episodes", "1,000 steps; an ended episode restarts from the state its env first drew; a time "
     "limit zeroes the TD error (playground/src/flow_policy/rollouts.py:229-268, 302-305)", "the same restarts "
     "(fluxrl/envs/control/playground_adapter.py); a time limit bootstraps from the final observation's value",
     "our GAE's one rule for every environment"),
    ("critic", "5 x 256 SiLU (fpo.py:163)", "64-64 SiLU for both methods", "CPU cost"),
    ("ablations", "n_mc 1 / 4 / 8 and eps vs u loss over the 10 tasks", "the same four FPO variants on Pendulum",
     "budget: one task"),
    ("evaluation", "evaluation episodes of the deterministic policy (Brax's evaluator)", "the training episodes' "
     "mean return in the last logged iterations; the grid world: 1,000 samples per saddle state and 64 rollouts from "
     "the start cell (fluxrl/onpolicy/gridworld_eval.py)", "the training curve needs no separate environment"),
    ("official code run here", "—", "not run", "it needs Python 3.12, wandb and (grid world) PyTorch"),
)


def protocol_table() -> list[str]:
    """Markdown rows of PROTOCOL_TABLE."""
    lines = ["| setting | official code (path:line) | ours | why they differ |", "|---|---|---|---|"]
    return lines + [f"| {a} | {b} | {c} | {d or 'same'} |" for a, b, c, d in PROTOCOL_TABLE]


def study_config(study: Study, method: str):
    """(algorithm, config) of one method of a study: the environment's tuned settings plus the method's change."""
    from fluxrl.commands.train_onpolicy import algorithm_for
    from fluxrl.onpolicy.tuned import tuned_config

    algorithm, changes = METHODS[method]
    config = tuned_config(algorithm, study.config["env"], **changes)
    return algorithm_for(config), config


def compare(final: dict, method: str, baseline: str, metric: str) -> str:
    """better / worse / tie of `method` against `baseline` on a final metric: inside the larger seed std, a tie."""
    a, b = final[method][metric], final[baseline][metric]
    margin, tolerance = a["mean"] - b["mean"], max(a["std"], b["std"])
    return "better" if margin > tolerance else ("worse" if margin < -tolerance else "tie")


def summarise(study: Study, rows: dict[str, list[dict]]) -> dict:
    """Final metrics per method (mean, std, per seed) and each paired comparison the study can make."""
    final = final_values(study, rows)
    pairs = {claim: compare(final, a, b, metric) for claim, (a, b, metric) in PAIRS.items()
             if a in final and b in final and metric in study.curves}
    return {"final": final, "pairs": pairs}


def verdict(claim: str, outcome: str) -> str:
    """Whether a paired outcome (better / tie / worse of FPO) goes the paper's way."""
    if claim == "return":  # the claim is parity or better
        return "held" if outcome in ("tie", "better") else "not held"
    return "held" if outcome == "better" else ("not separated" if outcome == "tie" else "not held")


def start_action_figure(study: Study, out: Path, seeds: int) -> Path | None:
    """The FPO vs Gaussian PPO figure of action samples at the start cell, from the runs' final checkpoints."""
    import jax

    from fluxrl.core import checkpoint
    from fluxrl.onpolicy import fpo, gridworld_eval, plots, ppo

    layout = gridworld_eval.layout_of(study.config["env"])
    runs = {}
    for method in study.methods:
        _, config = study_config(study, method)
        module = fpo if method.startswith("FPO") else ppo
        env_params = module.make_data(config)
        template = jax.eval_shape(jax.vmap(lambda key: module.init(config, env_params, key)),
                                  jax.random.split(jax.random.PRNGKey(0), seeds))
        state, _, _ = checkpoint.load(method_dir(out, study, method), template)
        runs[method] = (config, state)
    path = out / f"{study.name}-start-actions.png"
    plots.plot_start_actions(runs, layout, path, seeds=list(range(seeds)))
    return path


def _cell(result: dict, metric: str, digits: int) -> str:
    value = result[metric]
    return f"{value['mean']:.{digits}f} ± {value['std']:.{digits}f}"


def write_report(studies: list[Study], results: dict, out: Path, seeds: int, seconds: dict) -> Path:
    """report.md: protocol table, the claims task by task, then each study's table and figures."""
    lines = [f"# FPO against Gaussian PPO (protocol `{PROTOCOL}`)", "",
             "A reduced CPU protocol: small budgets and one continuous-control task family instead of the paper's "
             "10 DM Control tasks at 60M steps; the paper's numbers are printed beside ours to say where the methods "
             "stand there, not what we should match.", "", "## Protocol", "", *protocol_table(), "",
             f"{seeds} seeds per method. A beats B when A's mean final value exceeds B's by more than the larger of "
             "the two seed standard deviations (the noise floor); inside it, a tie.", "",
             wall_time_line(seconds), "", "## The paper's claims, task by task", "",
             *(f"- {name}: {text}." for name, text in CLAIMS.items()), "",
             "| study | claim | outcome of FPO | verdict |", "|---|---|---|---|"]
    for study in studies:
        for claim, outcome in results[study.name]["pairs"].items():
            lines.append(f"| {study.name} | {claim} | {outcome} | {verdict(claim, outcome)} |")
    lines += ["", "Paper (10 DM Control tasks, mean return): " + ", ".join(f"{k} {v}" for k, v in PAPER.items())
              + ". CheetahRun notebook: FPO 877.8 vs Gaussian PPO 560.7.", ""]
    for study in studies:
        final = results[study.name]["final"]
        lines += [f"## {study.name}", "", f"{study.title}. {study.iterations} iterations; "
                  f"{seconds.get(study.name, 0.0):.0f} s.", "",
                  "| method | " + " | ".join(study.curves) + " | per seed (" + study.headline + ") |",
                  "|---|" + "---|" * (len(study.curves) + 1)]
        for method in study.methods:
            cells = [_cell(final[method], metric, 3 if metric != "episode_return" else 1) for metric in study.curves]
            per_seed = ", ".join(f"{v:.3g}" for v in final[method][study.headline]["seeds"])
            lines.append(f"| {method} | " + " | ".join(cells) + f" | {per_seed} |")
        lines += ["", f"![{study.name}]({study.name}.png)", ""]
        if study.name == GRID and (out / f"{GRID}-start-actions.png").exists():
            lines += ["Actions at the start cell (17, 12), a saddle state, after training: each dot one of 1,000 "
                      "samples, coloured by the goal its move heads to.", "",
                      f"![start actions]({GRID}-start-actions.png)", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def reproduce(out: str = "runs/reproduce-fpo", seeds: int = 3, scale: float = 1.0,
              studies: tuple[str, ...] | None = None, progress: bool = True, protocol: str = PROTOCOL) -> Path:
    """Run the protocol (iterations multiplied by `scale`), draw the saddle-state figure, write the report."""
    from fluxrl.core.config import ConfigError, check_choice

    check_choice("protocol", protocol, PROTOCOLS)
    from fluxrl.envs.control import playground_adapter

    chosen = [s.name for s in STUDIES if studies is None or s.name in studies]
    if any(name.startswith("dmc-") for name in chosen) and not playground_adapter.available():
        raise ConfigError(f"the DM Control studies need MuJoCo Playground: {playground_adapter.INSTALL_HINT}, or "
                          "choose --studies gridworld pendulum.")

    def report(chosen, results, out_dir, seeds_, seconds):
        if any(study.name == GRID for study in chosen):
            start_action_figure(next(s for s in chosen if s.name == GRID), out_dir, seeds_)
        store_run_facts(out_dir, seconds, None)
        return write_report(chosen, results, out_dir, seeds_, seconds)

    return run_reproduction(STUDIES, study_config, summarise, report, protocol, out, seeds, scale, studies, progress)


def rebuild_report(out: str = "runs/reproduce-fpo") -> Path:
    """report.md again from the runs already in `out`."""
    return rebuild_from_runs(out, STUDIES, summarise, lambda *a, **k: write_report(*a[:5]), PROTOCOL)

