"""Reproduction of CORL's offline baselines (Tarasov et al. 2023, arXiv 2210.07105) on D4RL-style data, on a CPU.

BC, TD3+BC, IQL and AWAC, each with CORL's published config for the dataset, trained on D4RL-style datasets made
locally (`fluxrl data make`; not the original D4RL files) and evaluated in the dataset's environment with D4RL's
normalised score. The claims checked are the ones CORL's table makes at every budget we can afford: the three
offline RL methods beat behaviour cloning on halfcheetah-medium-replay, and IQL and AWAC reach a positive score on
maze2d-umaze. One protocol, cpu-reduced-1: `BUDGETS` updates per run (CORL runs 1M), 4 seeds, every other
difference named in `PROTOCOL_TABLE` with CORL's file and line. `fluxrl reproduce offline` makes (or reuses) the
datasets, runs it and writes `report.md` with learning curves.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from fluxrl.experiments.common import (Study, curve, final_values, paired_outcome, protocol_markdown,
                                       rebuild_from_runs, run_reproduction, store_run_facts, wall_time_line)
from fluxrl.offline import corl

OFFICIAL = "tinkoff-ai/CORL"  # CORL's code and README; paths below are inside it
METHODS = ("BC", "TD3+BC", "IQL", "AWAC")
PROTOCOL = "cpu-reduced-1"
PROTOCOLS = (PROTOCOL,)

# (updates, evaluation interval) per dataset: the three studies with compilation and evaluations fit the hour on
# the 2-core machine (docs/offline.md has the measured times).
BUDGETS = {PROTOCOL: {"halfcheetah-medium-replay": (20_000, 4000), "halfcheetah-medium": (20_000, 4000),
                      "maze2d-umaze": (20_000, 5000)}}

# The methods' algorithm names; their configs are CORL's per dataset (fluxrl/offline/corl.py), as are the
# evaluation episodes.
ALGORITHM_NAMES = {"BC": "bc", "TD3+BC": "td3bc", "IQL": "iql", "AWAC": "awac"}

STUDIES = tuple(
    Study(name, f"{name} (D4RL-style), D4RL-normalised score",
          dict(dataset=name, eval_episodes=corl.eval_episodes(name)), METHODS,
          iterations=BUDGETS[PROTOCOL][name][0], eval_every=BUDGETS[PROTOCOL][name][1],
          curves=("normalized_score",), headline="normalized_score", lower_is_better=False)
    for name in ("halfcheetah-medium-replay", "maze2d-umaze", "halfcheetah-medium"))

# CORL's README, "Last Scores" (final evaluation, 4 seeds, 1M updates, on the original D4RL v2 / v1 files):
# mean and std, README.md lines 63 (halfcheetah-medium-v2), 64 (-medium-replay-v2) and 78 (maze2d-umaze-v1).
CORL_LAST = {
    "halfcheetah-medium": {"BC": (42.40, 0.19), "TD3+BC": (48.10, 0.18), "AWAC": (49.46, 0.62), "IQL": (48.31, 0.22)},
    "halfcheetah-medium-replay": {"BC": (35.66, 2.33), "TD3+BC": (44.84, 0.59), "AWAC": (44.70, 0.69),
                                  "IQL": (44.46, 0.22)},
    "maze2d-umaze": {"BC": (0.36, 8.69), "TD3+BC": (29.41, 12.31), "AWAC": (82.67, 28.30), "IQL": (42.11, 0.58)},
}

# setting | CORL (path:line in OFFICIAL) | ours | why they differ ("" where they agree)
PROTOCOL_TABLE = (
    ("data", "D4RL's files: halfcheetah-medium-v2 (1M transitions), -medium-replay-v2 (about 202k), maze2d-umaze-v1 "
     "(1M), downloaded by d4rl", "D4RL-style files made here by fluxrl (`data make`) with D4RL's recipes: a JAX SAC "
     "of ours on HalfCheetah-v4 stopped at a third of D4RL's expert return (medium: 1M transitions of that policy; "
     "medium-replay: its 70,000-step replay buffer), maze2d from a BFS planner and D4RL's PD controller (1M)",
     "no internet; D4RL's files cannot be downloaded. Scores on our data are not scores on D4RL"),
    ("environments", "gym HalfCheetah-v3 (mujoco-py), d4rl maze2d-umaze-v1",
     "gymnasium HalfCheetah-v4 (the v3 model, official mujoco bindings); gymnasium-robotics PointMaze in D4RL's "
     "conventions (fluxrl/envs/control/maze2d.py)", "d4rl and mujoco-py do not install on Python 3.11"),
    ("updates", "1,000,000 per run (algorithms/offline/td3_bc.py:31, iql.py:38, any_percent_bc.py:28, "
     "awac.py:35)", "20,000 per run", "budget: 4 methods x 3 datasets x 4 seeds in an hour on 2 CPU cores"),
    ("evaluation", "every 5,000 updates (td3_bc.py:29, iql.py:36, any_percent_bc.py:26), AWAC every 1,000 "
     "(awac.py:37); 10 episodes on halfcheetah, 100 on maze2d (configs/offline/*/maze2d/umaze_v1.yaml: "
     "n_episodes / n_test_episodes)", "every 4,000 updates on halfcheetah, 5,000 on maze2d (100 episodes cost 3x halfcheetah's 10), and at the "
     "start; the same episode counts", "5-6 evaluations per run at our budget"),
    ("reported score", "the final evaluation, mean ± std over 4 seeds (README.md:58 \"Last Scores\")",
     "the same: the final evaluation, mean ± std over 4 seeds, each seed listed", ""),
    ("BC", "any_percent_bc.py with frac 1.0 (configs/offline/bc/*: frac 1.0): MSE on all the data, 2x256",
     "the same (fluxrl/offline/bc.py)", ""),
    ("TD3+BC", "alpha 2.5, policy noise 0.2, clip 0.5, delay 2, tau 0.005, batch 256, 2x256 "
     "(configs/offline/td3_bc/*)", "the same (fluxrl/offline/td3bc.py)", ""),
    ("IQL", "beta 3, expectile 0.7, tau 0.005, Gaussian actor, actor lr cosine-decayed to 0 over the run "
     "(configs/offline/iql/*; iql.py:399)", "the same, the cosine over our 20,000 updates",
     "the schedule's shape kept at the shorter budget"),
    ("AWAC", "lambda 0.3333 on halfcheetah, 0.1 on maze2d-umaze, 3x256, tau 0.005 (configs/offline/awac/*:1)",
     "the same (fluxrl/offline/awac.py)", ""),
    ("states", "normalised by the dataset's mean and std + 1e-3 (td3_bc.py:402-413), rewards unchanged "
     "(normalize_reward: false in these configs)", "the same", ""),
    ("official code run here", "—", "not run", "it needs d4rl's downloaded files and mujoco-py"),
)

CLAIMS = {"halfcheetah-medium-replay": "TD3+BC, IQL and AWAC beat BC (CORL: 44.8, 44.5, 44.7 vs 35.7)",
          "maze2d-umaze": "IQL and AWAC reach a positive normalised score (CORL: 42.1, 82.7)",
          "halfcheetah-medium": "TD3+BC, IQL and AWAC beat BC (CORL: 48.1, 48.3, 49.5 vs 42.4)"}


def protocol_rows() -> tuple[tuple[str, str, str, str], ...]:
    """PROTOCOL_TABLE and a last row of the per-dataset settings, read off the configs the reproduction runs."""
    return PROTOCOL_TABLE + (("per-dataset settings", "configs/offline/<algo>/<env>/<dataset>.yaml, where they differ "
                              "from the algorithm's defaults", "the same values (fluxrl/offline/corl.py), as run: "
                              + corl_changes(STUDIES), ""),)


def protocol_table() -> list[str]:
    """Markdown rows of the protocol table."""
    return protocol_markdown(protocol_rows(), f"CORL (`{OFFICIAL}`, path:line)")


def method_config(study: Study, method: str):
    """The config one method runs on the study's dataset: CORL's for it, IQL's cosine over the study's updates."""
    algorithm = ALGORITHM_NAMES[method]
    changes = dict(study.method_overrides.get(method, {}))
    if method == "IQL":  # CORL decays the actor's learning rate over the whole run
        changes.setdefault("actor_lr_decay_steps", study.iterations)
    return corl.corl_config(algorithm, study.config["dataset"], **changes)


def corl_changes(studies, methods=METHODS) -> str:
    """What the configs the reproduction runs set away from fluxrl's defaults, dataset by dataset ("field value";
    CORL's per-dataset values), read off the configs themselves so that a protocol table cannot disagree with them."""
    import dataclasses

    parts = []
    for study in studies:
        for method in (m for m in methods if m in study.methods):
            config = method_config(study, method)
            default = type(config)()
            changed = [f"{f.name} {getattr(config, f.name)}" for f in dataclasses.fields(config)
                       if f.name != "actor_lr_decay_steps" and getattr(config, f.name) != getattr(default, f.name)]
            if changed:
                parts.append(f"{study.name} {method}: {', '.join(changed)}")
    return "; ".join(parts)


def study_config(study: Study, method: str, data_dir: str | None = None):
    """(algorithm, config, shared data) of one method on one dataset."""
    from fluxrl.offline.common import load_offline_data

    config = method_config(study, method)
    algorithm = ALGORITHM_NAMES[method]
    data = load_offline_data(study.config["dataset"], algorithm, data_dir, study.config["eval_episodes"])
    return corl.algorithm_module(algorithm).ALGORITHM, config, data


def compare(final: dict, method: str, baseline: str) -> str:
    """better / worse / tie of `method` against `baseline` on the final score: a difference inside the larger
    seed standard deviation is a tie."""
    return paired_outcome(final[method]["normalized_score"], final[baseline]["normalized_score"])


def summarise(study: Study, rows: dict[str, list[dict]]) -> dict:
    """Final scores per method (mean, std, per seed), the best evaluation's mean, and each method against BC."""
    final = final_values(study, rows)
    for method, method_rows in rows.items():
        _, values = curve(method_rows, "normalized_score")
        final[method]["best_mean"] = float(values.mean(axis=0).max())
    versus_bc = {method: compare(final, method, "BC") for method in study.methods if method != "BC"}
    positive = {method: final[method]["normalized_score"]["mean"] > 0 for method in study.methods}
    return {"final": final, "versus_bc": versus_bc, "positive": positive}


def verdict(study: Study, summary: dict) -> str:
    """The claim of CLAIMS for this dataset, held or not, from the summary."""
    if study.name == "maze2d-umaze":
        held = all(summary["positive"][m] for m in ("IQL", "AWAC"))
        scores = ", ".join(f"{m} {summary['final'][m]['normalized_score']['mean']:.1f}" for m in ("IQL", "AWAC"))
        return f"{'held' if held else 'not held'} ({scores})"
    outcomes = summary["versus_bc"]
    held = all(outcomes[m] == "better" for m in ("TD3+BC", "IQL", "AWAC"))
    parts = ", ".join(f"{m} {outcome}" for m, outcome in outcomes.items())
    return f"{'held' if held else 'not held'} (against BC: {parts})"


def write_report(studies: list[Study], results: dict, out: Path, seeds: int, seconds: dict,
                 made: dict | None = None) -> Path:
    """report.md: the protocol table, then per dataset the final scores beside CORL's, the verdict and curves."""
    lines = [f"# Offline RL baselines on D4RL-style data (protocol `{PROTOCOL}`)", "",
             "BC, TD3+BC, IQL and AWAC with CORL's configs on datasets **made locally with D4RL's recipes** "
             "(`fluxrl data make`), not the original D4RL files: CORL's numbers beside ours are on the original "
             "data and at 50x our budget, so they say where the methods stand, not what we should match.", "",
             "## Protocol", "", *protocol_table(), "",
             f"{seeds} seeds per method. A method beats BC when its mean final score exceeds BC's by more than the "
             "larger of the two seed standard deviations (the noise floor); inside it, a tie.", "",
             wall_time_line(seconds)]
    if made:
        lines += ["", "Datasets: " + ", ".join(
            f"{name} {info['size']:,} transitions" + (f" (made in {info['seconds']:.0f} s)" if info["made"]
                                                       else " (reused)") for name, info in made.items()) + "."]
    lines.append("")
    for study in studies:
        summary = results[study.name]
        lines += [f"## {study.name}", "", f"{study.iterations:,} updates, evaluated every {study.eval_every:,} on "
                  f"{study.config['eval_episodes']} episodes; {seconds[study.name]:.0f} s for the four methods.", "",
                  "| method | final score (mean ± std) | per seed | best evaluation (mean) | CORL last, D4RL data, "
                  "1M updates |", "|---|---|---|---|---|"]
        for method in study.methods:
            result = summary["final"][method]
            score = result["normalized_score"]
            corl = CORL_LAST[study.name][method]
            lines.append(f"| {method} | {score['mean']:.1f} ± {score['std']:.1f} | "
                         + ", ".join(f"{v:.1f}" for v in score["seeds"])
                         + f" | {result['best_mean']:.1f} | {corl[0]:.1f} ± {corl[1]:.1f} |")
        lines += ["", f"Claim: {CLAIMS[study.name]}. **Ours: {verdict(study, summary)}.**", "",
                  f"![{study.name}]({study.name}.png)", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def studies_of(protocol: str) -> tuple[Study, ...]:
    """The studies with the protocol's budgets."""
    return tuple(replace(s, iterations=BUDGETS[protocol][s.name][0], eval_every=BUDGETS[protocol][s.name][1])
                 for s in STUDIES)


def make_datasets(names: list[str], data_dir: str | None, progress: bool) -> dict:
    """Make (or reuse) every dataset in `data_dir`; per name its size, whether it was made, and the seconds."""
    from fluxrl.offline import datasets, generate

    directory = data_dir or datasets.default_data_dir()
    made = {}
    for name in names:
        existed = generate.path_for(name, directory).exists()
        began = time.perf_counter()
        path = generate.make(name, directory, progress=progress)
        made[name] = {"size": int(generate.info(path).get("size", 0)), "made": not existed,
                      "seconds": time.perf_counter() - began}
    return made


def reproduce(out: str = "runs/reproduce-offline", seeds: int = 3, scale: float = 1.0,
              studies: tuple[str, ...] | None = None, progress: bool = True, protocol: str = PROTOCOL,
              data_dir: str | None = None) -> Path:
    """Make or reuse the datasets, run the protocol (updates multiplied by `scale`), write the report; returns
    its path."""
    from fluxrl.core.config import check_choice

    check_choice("protocol", protocol, PROTOCOLS)
    chosen = [s.name for s in studies_of(protocol) if studies is None or s.name in studies]
    began = time.perf_counter()
    made = make_datasets(chosen, data_dir, progress)
    data_seconds = time.perf_counter() - began
    config_of = lambda study, method: study_config(study, method, data_dir)  # noqa: E731

    def report(chosen_studies, results, out_dir, seeds_, seconds):
        seconds = {"datasets": data_seconds, **seconds}
        store_run_facts(out_dir, seconds, made)
        return write_report(chosen_studies, results, out_dir, seeds_, seconds, made)

    return run_reproduction(studies_of(protocol), config_of, summarise, report, protocol, out, seeds, scale,
                            studies, progress)


def rebuild_report(out: str = "runs/reproduce-offline") -> Path:
    """report.md again from the runs already in `out` (e.g. after changing how results are summarised)."""
    return rebuild_from_runs(out, studies_of(PROTOCOL), summarise, write_report, PROTOCOL)
