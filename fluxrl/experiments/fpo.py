"""`fluxrl reproduce fpo`: FPO against Gaussian PPO (McAllister et al. 2025), on the official code's protocols.

Studies: (a) the grid world `two_walls` under the official grid-world protocol (akanazawa/fpo `gridworld/`), where
the claim is about the shape of the policy: at saddle states FPO's actions are two modes heading to the two goals,
where a Gaussian commits to one. It is judged by a bimodality measure that an untrained policy and a wide unimodal
Gaussian fail (`fluxrl/onpolicy/bimodality.py`), with those controls measured beside the trained methods. (b)
Continuous control, where the claim is about return: FPO matches or beats a tuned Gaussian PPO (MuJoCo Playground
DM Control under the official Playground settings at a reduced batch and budget; gymnax Pendulum, which the paper
does not run, with its ablations). The report opens with the protocol table and puts the paper's numbers beside ours
with the budget ratio. `--protocol paper` runs the paper's DM Control budget (2,048 envs, 60M steps, the 5 x 256
critic); its wall time on this machine is estimated in docs/onpolicy.md.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from fluxrl.experiments.common import (Study, claim_verdict, final_values, method_dir, paired_outcome,
                                       rebuild_from_runs, run_reproduction, store_run_facts, wall_time_line)
from fluxrl.experiments.fpo_protocol import protocol_table

PROTOCOL = "cpu-reduced-2"
PAPER_PROTOCOL = "paper"
PROTOCOLS = (PROTOCOL, PAPER_PROTOCOL)
OFFICIAL = "akanazawa/fpo"
GRID = "gridworld"
# fluxrl's earlier grid-world settings: Playground's FPO (clip 0.05, n_mc 8, t on the sampler grid, eps loss, averaged
# losses, Fourier time, output x 0.25, tanh actions) on vectorised rollouts with observation normalisation, a global
# gradient clip and per-minibatch advantages. A separately labelled row, never the protocol of the comparison.
FLUXRL_GRID = dict(num_envs=16, num_steps=128, minibatches=8, grad_clip="global", adam_eps=1e-5, value_coef=0.5,
                   advantage_normalization="minibatch", time_limit="bootstrap", normalize_observations=True,
                   squash="tanh", network_init="lecun", clip_eps=0.05, n_mc=8, t_sampling="grid", output_mode="eps",
                   pair_average="losses", time_embed_dim=8, output_scale=0.25)
# method -> (algorithm, config changes); the ablations change one FPO setting each
METHODS = {"FPO": ("fpo", {}), "Gaussian PPO": ("ppo", {}), "FPO, fluxrl settings": ("fpo", FLUXRL_GRID),
           "FPO n_mc 1": ("fpo", dict(n_mc=1)), "FPO n_mc 4": ("fpo", dict(n_mc=4)),
           "FPO u-output": ("fpo", dict(output_mode="u"))}
ABLATIONS = ("FPO n_mc 1", "FPO n_mc 4", "FPO u-output")
GRID_ITERATIONS = 100  # 12 envs x 171 steps each: 205,200 env steps per seed
CONTROL = {"pendulum": 100, "dmc-cartpole-balance": 33, "dmc-reacher-easy": 33}  # iterations: about 1M env steps
CONTROL_SEEDS = 3  # seeds of the continuous-control studies (the grid world's come from --seeds, default 5)
ABLATION_ENV = "pendulum"
# The paper's DM Control budget: 2,048 envs x 480 steps per update, 61 updates (60M steps), the 5 x 256 critic.
PAPER_DMC = dict(num_envs=2048, critic_hidden=(256,) * 5)
PAPER_DMC_ITERATIONS = 61
# The wide unimodal controls: Gaussians of fixed std centred between the goals, as wide as the action box and 3x
# wider (which the move-level measure cannot tell from two modes: the environment's clip makes its moves two-peaked).
WIDE_STDS = (1.0, 3.0)

STUDIES = (
    Study(GRID, "grid world two_walls, official grid-world protocol: are saddle-state actions two modes?",
          dict(env="gridworld-two-walls"), ("FPO", "Gaussian PPO", "FPO, fluxrl settings"),
          iterations=GRID_ITERATIONS, eval_every=25,
          curves=("episode_return", "saddle_two_modes", "start_dip", "saddle_move_modes", "saddle_split",
                  "goals_reached"),
          headline="saddle_two_modes", lower_is_better=False),
) + tuple(
    Study(env, f"{env}: training episodes' return", dict(env=env),
          ("FPO", "Gaussian PPO") + (ABLATIONS if env == ABLATION_ENV else ()), iterations=iterations,
          eval_every=iterations, curves=("episode_return",), headline="episode_return", lower_is_better=False,
          eval_at_start=False, seeds=CONTROL_SEEDS)
    for env, iterations in CONTROL.items())

# The paper's numbers (arXiv 2507.21053; 10 MuJoCo Playground DM Control tasks, 5 seeds, 60M steps): mean return.
PAPER = {"FPO": "759.3 ± 45.3", "Gaussian PPO (tuned)": "667.8 ± 66.0", "Gaussian PPO (default)": "577.2",
         "DPPO-style denoising MDP": "652.5", "FPO n_mc 4": "731.2", "FPO n_mc 1": "691.6", "FPO u-output": "665.0"}
# The public notebooks on CheetahRun (playground/train_fpo.ipynb, train_ppo.ipynb), evaluation return at 60M steps.
NOTEBOOK = {"FPO": 877.8, "Gaussian PPO": 560.7}
OFFICIAL_UPDATE_STEPS = 2048 * 480  # env steps per update (fpo.py:64-70)
OFFICIAL_STEPS = 61 * OFFICIAL_UPDATE_STEPS

CLAIMS = {
    "bimodal": "at saddle states FPO's actions are two modes heading to the two goals; Gaussian PPO's are not, and "
               "neither are the controls' (saddle_two_modes: the shape of the policy's own samples)",
    "two-goal moves": "at saddle states FPO's moves head to both goals with few in between, more often than Gaussian "
                      "PPO's and the controls' (saddle_move_modes: behaviour after the environment's clip)",
    "return": "FPO matches or beats Gaussian PPO (final training return)",
    "n_mc 8 vs 4": "n_mc 8 beats n_mc 4 (paper 759.3 vs 731.2)",
    "n_mc 8 vs 1": "n_mc 8 beats n_mc 1 (paper 759.3 vs 691.6)",
    "eps vs u": "the eps-MSE loss beats the plain velocity loss (paper 759.3 vs 665.0)",
}
PAIRS = {"bimodal": ("FPO", "Gaussian PPO", "saddle_two_modes"),
         "two-goal moves": ("FPO", "Gaussian PPO", "saddle_move_modes"),
         "return": ("FPO", "Gaussian PPO", "episode_return"), "n_mc 8 vs 4": ("FPO", "FPO n_mc 4", "episode_return"),
         "n_mc 8 vs 1": ("FPO", "FPO n_mc 1", "episode_return"),
         "eps vs u": ("FPO", "FPO u-output", "episode_return")}

def study_config(study: Study, method: str, protocol: str = PROTOCOL):
    """(algorithm, config) of one method of a study: the environment's settings plus the method's change."""
    from fluxrl.commands.train_onpolicy import algorithm_for
    from fluxrl.onpolicy.tuned import CONFIG_TYPES, tuned_config

    algorithm, changes = METHODS[method]
    if method == "FPO, fluxrl settings":
        shared = dict(epochs=10, lr=3e-4, gamma=0.99, gae_lambda=0.98, max_grad_norm=0.5, actor_hidden=(64, 64),
                      critic_hidden=(64, 64), activation="relu")
        config = CONFIG_TYPES[algorithm](env=study.config["env"], **shared, **changes)
    else:
        if protocol == PAPER_PROTOCOL and study.name.startswith("dmc-"):
            changes = {**PAPER_DMC, **changes}
        config = tuned_config(algorithm, study.config["env"], **changes)
    return algorithm_for(config), config


def compare(final: dict, method: str, baseline: str, metric: str) -> str:
    """better / worse / tie of `method` against `baseline` on a final metric: inside the larger seed std, a tie."""
    return paired_outcome(final[method][metric], final[baseline][metric])


def summarise(study: Study, rows: dict[str, list[dict]]) -> dict:
    """Final metrics per method (mean, std, per seed) and each paired comparison the study can make."""
    final = final_values(study, rows)
    pairs = {claim: compare(final, a, b, metric) for claim, (a, b, metric) in PAIRS.items()
             if a in final and b in final and metric in study.curves}
    return {"final": final, "pairs": pairs}


def control_configs() -> dict:
    """The grid-world controls: the untrained policies of the official protocol and a wide unimodal Gaussian."""
    from fluxrl.onpolicy.tuned import tuned_config

    env = "gridworld-two-walls"
    wide = {f"wide Gaussian (std {std:g})": dataclasses.replace(tuned_config("ppo", env), fixed_std=std,
                                                                mean_output_scale=1e-6) for std in WIDE_STDS}
    return {"untrained FPO": tuned_config("fpo", env), "untrained Gaussian": tuned_config("ppo", env), **wide}


def measure_controls(seeds: int) -> dict:
    """The grid-world evaluation of each control for `seeds` seeds: metric -> mean, std, per-seed values."""
    import jax

    from fluxrl.commands.train_onpolicy import algorithm_for
    from fluxrl.onpolicy import gridworld_eval, plots

    measured = {}
    for name, config in control_configs().items():
        algorithm = algorithm_for(config)
        env_params = algorithm.make_data(config)
        evaluate = gridworld_eval.evaluation(plots.policy_of)
        untrained = jax.jit(lambda key: evaluate(config, env_params, algorithm.init(config, env_params, key),
                                                 jax.random.fold_in(key, 1)))
        per_seed = [untrained(jax.random.PRNGKey(seed)) for seed in range(seeds)]
        measured[name] = {metric: {"mean": float(np.mean(values)), "std": float(np.std(values)),
                                   "seeds": [float(v) for v in values]}
                          for metric in STUDIES[0].curves if metric in per_seed[0]
                          for values in [[float(m[metric]) for m in per_seed]]}
    return measured


def control_verdict(final: dict, controls: dict, metric: str) -> str:
    """held when FPO's `metric` exceeds Gaussian PPO's and every control's by more than the larger seed std of the
    two compared; not held when it does not exceed Gaussian PPO's; not separated otherwise."""
    ours = final["FPO"][metric]
    rivals = {"Gaussian PPO": final["Gaussian PPO"][metric], **{k: v[metric] for k, v in controls.items()}}
    beats = {name: ours["mean"] - rival["mean"] > max(ours["std"], rival["std"]) for name, rival in rivals.items()}
    if all(beats.values()):
        return "held"
    return "not held" if ours["mean"] <= rivals["Gaussian PPO"]["mean"] else "not separated"


def verdict(claim: str, outcome: str) -> str:
    """Whether a paired outcome (better / tie / worse of FPO) goes the paper's way."""
    return claim_verdict(outcome, parity=claim == "return")  # the return claim is parity or better


def start_action_figure(study: Study, out: Path, seeds: int, protocol: str) -> Path | None:
    """The figure of action samples at the start cell of every grid-world method, from the final checkpoints."""
    import jax

    from fluxrl.core import checkpoint
    from fluxrl.onpolicy import fpo, gridworld_eval, plots, ppo

    layout = gridworld_eval.layout_of(study.config["env"])
    runs = {}
    for method in study.methods:
        _, config = study_config(study, method, protocol)
        module = fpo if isinstance(config, fpo.FPOConfig) else ppo
        env_params = module.make_data(config)
        template = jax.eval_shape(jax.vmap(lambda key: module.init(config, env_params, key)),
                                  jax.random.split(jax.random.PRNGKey(0), seeds))
        state, _, _ = checkpoint.load(method_dir(out, study, method), template)
        runs[method] = (config, state)
    path = out / f"{study.name}-start-actions.png"
    plots.plot_start_actions(runs, layout, path, seeds=list(range(seeds)))
    return path


def _cell(result: dict, metric: str) -> str:
    value = result[metric]
    digits = 1 if metric == "episode_return" else 3
    return f"{value['mean']:.{digits}f} ± {value['std']:.{digits}f}"


def _grid_section(study: Study, final: dict, controls: dict) -> list[str]:
    metrics = study.curves
    lines = ["| policy | " + " | ".join(metrics) + " | saddle_two_modes per seed |",
             "|---|" + "---|" * (len(metrics) + 1)]
    for name, values in {**final, **controls}.items():
        cells = [_cell(values, m) if m in values else "—" for m in metrics]
        per_seed = ", ".join(f"{v:.2f}" for v in values["saddle_two_modes"]["seeds"])
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {per_seed} |")
    return lines + ["", "The controls are untrained (no training iteration); `saddle_split` and `goals_reached` "
                    "measure spread and the wide Gaussian scores well on them, `saddle_two_modes` and `start_dip` "
                    "measure shape (docs/metrics.md)."]


def write_report(studies: list[Study], results: dict, out: Path, seeds: int, seconds: dict,
                 protocol: str = PROTOCOL, skipped: tuple[str, ...] = ()) -> Path:
    """report.md: protocol table, the claims task by task, then each study's table and figures."""
    budget = (f"DM Control budget: {CONTROL['dmc-cartpole-balance'] * 64 * 480:,} env steps per task and seed, "
              f"1/{OFFICIAL_STEPS / (CONTROL['dmc-cartpole-balance'] * 64 * 480):.0f} of the paper's "
              f"{OFFICIAL_STEPS:,}; 30,720 steps per update, 1/{OFFICIAL_UPDATE_STEPS // 30720} of the paper's "
              f"{OFFICIAL_UPDATE_STEPS:,}." if protocol == PROTOCOL else
              f"DM Control budget: the paper's, {OFFICIAL_STEPS:,} env steps per task and seed.")
    lines = [f"# FPO against Gaussian PPO (protocol `{protocol}`)", "",
             "The grid world runs the official grid-world protocol; continuous control runs the official Playground "
             "settings at a reduced batch and budget on two DM Control tasks instead of ten. The paper's numbers "
             "stand beside ours to say where the methods stand at the paper's budget, not what ours should match.",
             "", "## Protocol", "", *protocol_table(), "",
             f"{seeds} seeds per method in the grid world, {CONTROL_SEEDS} in continuous control. A beats B when A's mean final value exceeds B's by more than the larger of "
             "the two seed standard deviations (the noise floor); inside it, a tie.", "", budget, "",
             wall_time_line(seconds), ""]
    if skipped:
        lines += [f"Skipped: {', '.join(skipped)} (MuJoCo Playground is not installed: pip install "
                  "'fluxrl[playground]').", ""]
    lines += ["## The paper's claims, task by task", "", *(f"- {name}: {text}." for name, text in CLAIMS.items()),
              "", "| study | claim | outcome of FPO | verdict |", "|---|---|---|---|"]
    controls = results.get("controls", {})
    for study in studies:
        for claim, outcome in results[study.name]["pairs"].items():
            shown = verdict(claim, outcome)
            if study.name == GRID and PAIRS[claim][2] != "episode_return" and controls:
                shown = control_verdict(results[study.name]["final"], controls, PAIRS[claim][2])
            lines.append(f"| {study.name} | {claim} | {outcome} | {shown} |")
    lines += ["", "Paper (10 DM Control tasks, 5 seeds, 60M steps, mean return): "
              + ", ".join(f"{k} {v}" for k, v in PAPER.items())
              + f". CheetahRun notebooks at 60M steps: FPO {NOTEBOOK['FPO']} vs Gaussian PPO "
              f"{NOTEBOOK['Gaussian PPO']}.", ""]
    for study in studies:
        final = results[study.name]["final"]
        lines += [f"## {study.name}", "", f"{study.title}. {study.iterations} iterations; "
                  f"{seconds.get(study.name, 0.0):.0f} s.", ""]
        if study.name == GRID:
            lines += _grid_section(study, final, controls)
        else:
            lines += ["| method | episode_return | per seed | paper (10-task mean, 60M steps) |",
                      "|---|---|---|---|"]
            for method in study.methods:
                per_seed = ", ".join(f"{v:.3g}" for v in final[method]["episode_return"]["seeds"])
                paper = PAPER.get("Gaussian PPO (tuned)" if method == "Gaussian PPO" else method, "—")
                paper = paper if study.name.startswith("dmc-") else "— (not in the paper)"
                lines.append(f"| {method} | {_cell(final[method], 'episode_return')} | {per_seed} | {paper} |")
        lines += ["", f"![{study.name}]({study.name}.png)", ""]
        if study.name == GRID and (out / f"{GRID}-start-actions.png").exists():
            lines += ["Actions at the start cell (17, 12), a saddle state, after training: each dot one of 1,000 "
                      "samples as the environment gets them before its clip, coloured by the goal its move heads to.",
                      "", f"![start actions]({GRID}-start-actions.png)", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def _with_controls(out_dir: Path, studies: list[Study], results: dict, seeds: int) -> dict:
    """results plus the grid-world controls (measured once, stored in results.json)."""
    import json

    if not any(study.name == GRID for study in studies):
        return results
    stored = json.loads((out_dir / "results.json").read_text())
    if "controls" not in stored:
        stored["controls"] = measure_controls(seeds)
        (out_dir / "results.json").write_text(json.dumps(stored, indent=2) + "\n")
    return {**results, "controls": stored["controls"]}


def reproduce(out: str = "runs/reproduce-fpo", seeds: int = 5, scale: float = 1.0,
              studies: tuple[str, ...] | None = None, progress: bool = True, protocol: str = PROTOCOL) -> Path:
    """Run the protocol (iterations multiplied by `scale`), measure the controls, draw the start-cell figure, write
    the report. The DM Control studies are skipped, and named in the report, when MuJoCo Playground is missing."""
    from fluxrl.core.config import check_choice
    from fluxrl.envs.control import playground_adapter

    check_choice("protocol", protocol, PROTOCOLS)
    chosen = [s for s in STUDIES if studies is None or s.name in studies]
    skipped = ()
    if not playground_adapter.available():
        skipped = tuple(s.name for s in chosen if s.name.startswith("dmc-"))
        if progress and skipped:
            print(f"skipping {', '.join(skipped)}: {playground_adapter.INSTALL_HINT}")
    names = tuple(s.name for s in chosen if s.name not in skipped)
    all_studies = tuple(dataclasses.replace(s, iterations=PAPER_DMC_ITERATIONS, eval_every=PAPER_DMC_ITERATIONS)
                        if protocol == PAPER_PROTOCOL and s.name.startswith("dmc-") else s for s in STUDIES)

    def report(chosen, results, out_dir, seeds_, seconds):
        results = _with_controls(out_dir, chosen, results, seeds_)
        if any(study.name == GRID for study in chosen):
            start_action_figure(next(s for s in chosen if s.name == GRID), out_dir, seeds_, protocol)
        store_run_facts(out_dir, seconds, None)
        return write_report(chosen, results, out_dir, seeds_, seconds, protocol, skipped)

    config_of = lambda study, method: study_config(study, method, protocol)
    return run_reproduction(all_studies, config_of, summarise, report, protocol, out, seeds, scale, names, progress)


def rebuild_report(out: str = "runs/reproduce-fpo") -> Path:
    """report.md again from the runs already in `out`."""
    import json

    protocol = json.loads((Path(out) / "results.json").read_text()).get("protocol", PROTOCOL)

    def report(chosen, results, out_dir, seeds, seconds, *_):
        return write_report(chosen, _with_controls(out_dir, chosen, results, seeds), out_dir, seeds, seconds, protocol)

    return rebuild_from_runs(out, STUDIES, summarise, report, protocol)
