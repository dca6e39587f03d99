"""Reproduction of multi-step meta-gradients with mixing (Bonnet, Caron, Barrett, Davies, Laterre; arXiv 2111.00206)
on Jumanji Snake 6x6, on a CPU.

The paper's question: K-step meta-gradients are better in expectation but of much higher variance; does mixing the
outer losses of the K inner steps cut the variance (about 3x on Snake) at similar or higher return? Methods:
A2C with gamma and lambda fixed, the one-step meta-gradient, K-step meta-gradients for K in {2, 4, 8}, and uniform
mixing over the same K, every one meta-learning gamma (from 0.8) and lambda (from 0.95), so meta-gradients are
vectors. The variance is measured at fixed (theta, eta) at every evaluation: per seed, meta-gradients whose K-step
and mixed estimators come from the same unrolls, and a reference batch of 64 drawn apart. The headline is
scale-free: relative variance trace(Cov) / |mean|^2 of each estimator, K-step over mixed, paired by seed; the raw
ratio of covariance traces is shown beside it. A meta-update of K inner updates costs K rollouts, so at equal env
steps K = 1 has made 8x the meta-updates of K = 8: the meta-parameters are also compared at equal meta-update
counts. One protocol, cpu-reduced-2; `PROTOCOL_TABLE` names every difference from the group's public settings.
`fluxrl reproduce metagrad` runs it and writes `report.md` with figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fluxrl.experiments.common import (Study, curve, protocol_markdown, rebuild_from_runs, run_reproduction,
                                       wall_time_line)

PROTOCOL = "cpu-reduced-2"
PROTOCOLS = (PROTOCOL,)
HORIZONS = (2, 4, 8)
METHODS = ("A2C fixed gamma", "1-step") + tuple(f"{k}-step" for k in HORIZONS) + tuple(f"mixed {k}" for k in HORIZONS)
# The meta-parameters learned (the group's public code learns gamma and also supports lambda).
META_PARAMS = ("gamma", "lambda")
# Reduced protocol: 32 environments x 5 steps per update (the public code: 512), 8 updates per iteration, RMSProp
# 3e-3 (public: 5e-4, which barely moves the policy within this budget); per measurement M = 16 meta-gradients
# compared with the mean of R = 64 others (the reference), all N = 80 giving the variance and the mean's norm.
NUM_ENVS, LR, UPDATES_PER_ITERATION, ITERATIONS, EVAL_EVERY = 32, 3e-3, 8, 300, 75
VARIANCE_SAMPLES, REFERENCE_SAMPLES = 16, 64
# Seeds are split over the CPU's cores (fluxrl.core.devices): on 2 cores, 6 seeds take three seeds' time.
SEEDS = 6

STUDIES = (Study("snake-6x6", "Jumanji Snake 6x6, A2C with meta-learned gamma and lambda", dict(env="snake-6x6"),
                 METHODS, iterations=ITERATIONS, eval_every=EVAL_EVERY, curves=("episode_return", "gamma", "lambda"),
                 headline="episode_return", lower_is_better=False),)

# The group's public 6x6 results (10 seeds, 75M steps), as the reference records them.
REFERENCE = {"A2C fixed gamma": "17.4", "1-step": "24.9 ± 5.9 (final gamma 0.965)"}
PAPER_VARIANCE_RATIO = "about 3x"
ESTIMATORS = ("kstep", "uniform", "geometric")
MIXES = ("uniform", "geometric")

# setting | the group's public code or paper | ours | why they differ ("" where they agree)
PROTOCOL_TABLE = (
    ("environment", "Jumanji Snake 6x6, time limit 500", "the same (jumanji 1.1.2)", ""),
    ("network", "Conv(32, 2x2, stride 2) -> Conv(32, 2x2) -> policy MLP [64, 64], value MLP [128, 128], action "
     "mask on the logits", "the same (SAME padding; the 2x2 convolutions as matrix products)", ""),
    ("A2C", "512 envs x 5 steps, RMSProp 5e-4, gamma 0.8, lambda 0.95, l_pg 1, l_td 0.5, l_en 0.01",
     f"{NUM_ENVS} envs x 5 steps, RMSProp {LR:g}, the rest the same",
     "budget: 1/195 of the public env steps; with 64 envs at 5e-4 A2C's return had not moved after 1.2M "
     "steps (5.9, random play 5.5), with 32 envs at 3e-3 it reaches ~15.8 by 0.4M"),
    ("meta-optimiser", "Adam 3e-3, meta-gradient clip 0.1, meta-parameters as logits (sigmoid)",
     "the same (clip by global norm)", ""),
    ("outer loss", "policy gradient with gamma' = lambda' = 1, no value or entropy term (Xu et al. 2018 form)",
     "the same, advantages held fixed", ""),
    ("meta-parameters", "gamma (the public 6x6 results); the code also supports lambda and the loss weights",
     "gamma from 0.8 and lambda from 0.95", "two, so that meta-gradients are vectors"),
    ("mixing weights", "could not be read (only the abstract is public)", "uniform over the K inner steps for the "
     "trained runs; geometric (kappa 0.5) measured beside it", "the reference marks the weights a reconstruction"),
    ("variance metric", "could not be read", f"relative variance trace(Cov) / |mean|^2 of N = "
     f"{VARIANCE_SAMPLES + REFERENCE_SAMPLES} meta-gradients at fixed (theta, eta), each from its own fresh "
     f"rollouts; cosine of M = {VARIANCE_SAMPLES} of them to the mean of the other R = {REFERENCE_SAMPLES}",
     "the reference names the covariance trace and the cosine; the ratio of traces alone compares estimators of "
     "different size"),
    ("meta-updates", "one per K inner updates", "the same: at equal env steps K = 1 makes 8x the meta-updates of "
     "K = 8; the report also compares at equal meta-update counts", ""),
    ("seeds and budget", "10 seeds, 75M env steps", "SEEDS seeds, ITER x 8 updates x 160 steps", "CPU time"),
)


def protocol_rows(iterations: int, seeds: int) -> list[str]:
    """Markdown rows of PROTOCOL_TABLE, with the run's seeds and env steps per seed."""
    steps = iterations * UPDATES_PER_ITERATION * NUM_ENVS * 5
    budget = (f"{seeds} seeds, {steps:,} env steps per seed ({iterations} iterations x {UPDATES_PER_ITERATION} "
              f"updates x {NUM_ENVS * 5} steps)")
    rows = [(a, b, c.replace("SEEDS seeds, ITER x 8 updates x 160 steps", budget), d) for a, b, c, d in PROTOCOL_TABLE]
    return protocol_markdown(rows, "official (public) code / paper")


def inner_steps_of(method: str) -> int:
    """K of a meta-gradient method's name ("4-step", "mixed 4")."""
    return int(method.split()[-1]) if method.startswith("mixed") else int(method.split("-")[0])


def study_config(study: Study, method: str):
    """(algorithm, config) of one method."""
    from fluxrl.meta import a2c, metagrad

    samples = {"variance_samples": VARIANCE_SAMPLES, "reference_samples": REFERENCE_SAMPLES}
    options = {key: value for key, value in study.config.items() if key not in samples}
    agent = a2c.A2CConfig(**{"num_envs": NUM_ENVS, "lr": LR, "updates_per_iteration": UPDATES_PER_ITERATION,
                             **options})
    if method == "A2C fixed gamma":
        return a2c.ALGORITHM, agent
    mix = "uniform" if method.startswith("mixed") else "none"
    return metagrad.ALGORITHM, metagrad.MetaConfig(
        a2c=agent, meta_params=META_PARAMS, inner_steps=inner_steps_of(method), mix=mix,
        **{name: study.config.get(name, default) for name, default in samples.items()})


def final_window(rows: list[dict], metric: str, share: float = 0.1) -> np.ndarray:
    """Per seed, the mean of a metric's logged values over the last `share` of the run."""
    iterations, values = curve(rows, metric)
    keep = iterations >= iterations[-1] * (1 - share)
    return values[:, keep].mean(axis=1)


def paired_interval(values: np.ndarray) -> tuple[float, float]:
    """95% Student-t interval of the mean of per-seed values (each seed's own paired difference or log ratio)."""
    from scipy import stats

    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean() - half), float(values.mean() + half)


def evaluations(rows: list[dict], metric: str) -> np.ndarray:
    """A diagnostic's values [seeds, evaluations] at the evaluations after the one at the start (whose untrained
    policy is not what the claims are about), or all of them when there is no other."""
    _, values = curve(rows, metric)
    return values[:, 1:] if values.shape[1] > 1 else values


def paired_log_ratios(runs: list[list[dict]], quantity: str, numerator: str, denominator: str) -> np.ndarray:
    """Per seed, the mean over the runs' evaluations of log(quantity of numerator / quantity of denominator):
    both estimators come from the same unrolls, and a seed's runs (its K-step and its mixed run) are pooled, so
    the seeds are the independent units."""
    logs = [np.log(np.maximum(evaluations(rows, f"meta_grad_{quantity}_{numerator}"), 1e-30)
                   / np.maximum(evaluations(rows, f"meta_grad_{quantity}_{denominator}"), 1e-30)) for rows in runs]
    return np.concatenate(logs, axis=1).mean(axis=1)


def ratio_entry(logs: np.ndarray) -> dict:
    """A ratio's geometric mean over seeds, its paired 95% interval and per-seed values."""
    low, high = paired_interval(logs)
    return {"geometric_mean": float(np.exp(logs.mean())), "ci95": [float(np.exp(low)), float(np.exp(high))],
            "per_seed": [float(v) for v in np.exp(logs)]}


def common_counts(rows: dict[str, list[dict]], points: int = 4) -> list[int]:
    """Meta-update counts every meta method reached, `points` of them evenly up to the smallest final count,
    each rounded down to a count K = 1 logs exactly where it can be."""
    finals, steps = [], []
    for method, method_rows in rows.items():
        if method == "A2C fixed gamma":
            continue
        _, counts = curve(method_rows, "meta_updates")
        finals.append(counts[:, -1].min())
        steps.append(np.diff(counts[0]).max() if counts.shape[1] > 1 else 1)
    grid = max(int(max(steps)), 1)
    wanted = [int(finals and min(finals) * (i + 1) / points) for i in range(points)]
    return sorted({c // grid * grid if c >= grid else c for c in wanted})


def at_counts(rows: list[dict], metric: str, counts: list[int]) -> np.ndarray:
    """A metric's values [seeds, len(counts)] after the given numbers of meta-updates (linear between logged
    points; exact where a count was logged)."""
    _, meta_updates = curve(rows, "meta_updates")
    _, values = curve(rows, metric)
    return np.array([np.interp(counts, x, y) for x, y in zip(meta_updates, values)])


def summarise(study: Study, rows: dict[str, list[dict]]) -> dict:
    """Per method: final return, gamma and lambda (last 10% of the run, per seed), the estimators' cosines, and
    gamma, lambda and return at equal meta-update counts; per K: the scale-free and raw variance ratios K-step /
    mixed paired by seed, the cosines, and the return difference mixed - K-step paired by seed."""
    methods, counts = {}, common_counts(rows)
    for method, method_rows in rows.items():
        entry = {name: [float(v) for v in final_window(method_rows, metric)]
                 for name, metric in (("return", "episode_return"), ("gamma", "gamma"), ("lambda", "lambda"))}
        if method != "A2C fixed gamma":
            entry["at_meta_updates"] = {metric: {str(c): [float(v) for v in column] for c, column in
                                                 zip(counts, at_counts(method_rows, metric, counts).T)}
                                        for metric in ("gamma", "lambda", "episode_return")}
            entry["cosine"] = {e: float(evaluations(method_rows, f"meta_grad_cosine_{e}").mean()) for e in ESTIMATORS}
        methods[method] = entry
    horizons = {}
    for k in HORIZONS:
        runs = [rows[name] for name in (f"{k}-step", f"mixed {k}") if name in rows]
        if not runs:
            continue
        entry = {"runs": [name for name in (f"{k}-step", f"mixed {k}") if name in rows]}
        for mix in MIXES:
            entry[f"relative_ratio_{mix}"] = ratio_entry(paired_log_ratios(runs, "relative_variance", "kstep", mix))
            entry[f"raw_ratio_{mix}"] = ratio_entry(paired_log_ratios(runs, "variance", "kstep", mix))
        for e in ESTIMATORS:
            per_seed = np.concatenate([evaluations(r, f"meta_grad_cosine_{e}") for r in runs], axis=1).mean(axis=1)
            entry[f"cosine_{e}"] = {"mean": float(per_seed.mean()), "std": float(per_seed.std(ddof=1)),
                                    "per_seed": [float(v) for v in per_seed]}
        for mix in MIXES:
            per_seed = np.concatenate([evaluations(r, f"meta_grad_bias_{mix}") for r in runs], axis=1).mean(axis=1)
            entry[f"bias_{mix}"] = float(per_seed.mean())
        if len(runs) == 2:
            differences = np.array(methods[f"mixed {k}"]["return"]) - np.array(methods[f"{k}-step"]["return"])
            low, high = paired_interval(differences)
            entry["return_difference"] = {"mean": float(differences.mean()), "ci95": [low, high],
                                          "std": float(differences.std(ddof=1)),
                                          "per_seed": [float(v) for v in differences]}
        horizons[k] = entry
    return {"methods": methods, "horizons": horizons, "meta_update_counts": counts}


def _interval(ratio: dict) -> str:
    return f"{ratio['geometric_mean']:.2f}x ({ratio['ci95'][0]:.2f}-{ratio['ci95'][1]:.2f})"


def _claims(results: dict) -> list[str]:
    """Per K: the scale-free and raw variance ratios beside the paper's figure, cosines, return difference."""
    lines = ["| K | scale-free: K-step / uniform mix (95% CI) | K-step / geometric mix (95% CI) | raw traces: "
             "K-step / uniform | raw: K-step / geometric | paper |", "|---|---|---|---|---|---|"]
    for k, entry in results["horizons"].items():
        lines.append(f"| {k} | {_interval(entry['relative_ratio_uniform'])} | "
                     f"{_interval(entry['relative_ratio_geometric'])} | {_interval(entry['raw_ratio_uniform'])} | "
                     f"{_interval(entry['raw_ratio_geometric'])} | {PAPER_VARIANCE_RATIO} |")
    lines += ["", "| K | cosine to its reference: K-step | uniform mix | geometric mix | bias proxy: uniform | "
              "geometric | return mixed − K-step (95% CI) | std of the differences |", "|---|---|---|---|---|---|---|---|"]
    for k, entry in results["horizons"].items():
        cosines = " | ".join(f"{entry[f'cosine_{e}']['mean']:+.3f} ± {entry[f'cosine_{e}']['std']:.3f}"
                             for e in ESTIMATORS)
        diff = entry.get("return_difference")
        cells = ("—", "—") if diff is None else (
            f"{diff['mean']:+.2f} ({diff['ci95'][0]:+.2f} to {diff['ci95'][1]:+.2f})", f"{diff['std']:.2f}")
        lines.append(f"| {k} | {cosines} | {entry['bias_uniform']:+.3f} | {entry['bias_geometric']:+.3f} | "
                     f"{cells[0]} | {cells[1]} |")
    return lines


def _trajectory_rows(results: dict) -> list[str]:
    """Per meta method: gamma, lambda and return (mean ± std over seeds) after equal numbers of meta-updates."""
    counts = results["meta_update_counts"]
    lines = ["| method | " + " | ".join(f"γ after {c}" for c in counts) + " | "
             + " | ".join(f"λ after {c}" for c in counts) + f" | return after {counts[-1]} |",
             "|---|" + "---|" * (2 * len(counts) + 1)]
    for method, entry in results["methods"].items():
        if "at_meta_updates" not in entry:
            continue
        at = entry["at_meta_updates"]
        cells = [f"{np.mean(at[m][str(c)]):.3f} ± {np.std(at[m][str(c)]):.3f}" for m in ("gamma", "lambda")
                 for c in counts]
        last = np.array(at["episode_return"][str(counts[-1])])
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {last.mean():.2f} ± {last.std():.2f} |")
    return lines


def _method_rows(results: dict) -> list[str]:
    lines = ["| method | return, last 10% (mean ± std) | per seed | final γ (mean ± std) | final λ (mean ± std) | "
             "public 6x6 result |", "|---|---|---|---|---|---|"]
    for method, entry in results["methods"].items():
        returns, gammas, lambdas = (np.array(entry[name]) for name in ("return", "gamma", "lambda"))
        lines.append(f"| {method} | {returns.mean():.2f} ± {returns.std():.2f} | "
                     + ", ".join(f"{v:.1f}" for v in returns) + f" | {gammas.mean():.3f} ± {gammas.std():.3f} | "
                     f"{lambdas.mean():.3f} ± {lambdas.std():.3f} | {REFERENCE.get(method, '—')} |")
    return lines


def write_report(studies: list[Study], results: dict, out: Path, seeds: int, seconds: dict,
                 datasets: dict | None = None) -> Path:
    """report.md: protocol, the claims (variance ratios, cosines, return differences), the meta-parameters at
    equal meta-update counts, the methods, figures."""
    from fluxrl.experiments.common import stored_rows

    study = studies[0]
    summary = results[study.name]
    rows = stored_rows(out, study)
    from fluxrl.experiments.metagrad_plots import plot_meta_parameters, plot_variance  # they import this module

    plot_variance(rows, out / "variance.png")
    plot_meta_parameters(rows, out / "meta-parameters.png")
    env_steps = study.iterations * UPDATES_PER_ITERATION * NUM_ENVS * 5
    evaluations_used = max(study.iterations // study.eval_every, 1)
    lines = [f"# Multi-step meta-gradients with mixing on Snake 6x6 (protocol `{PROTOCOL}`)", "",
             f"A reduced CPU protocol: about 1/{75e6 / env_steps:.0f} of the public runs' env steps. The public "
             "numbers say where the methods stand after 75M steps, not what this budget should reach.", "",
             "## Protocol", "", *protocol_rows(study.iterations, seeds), "",
             f"{seeds} seeds per method. {wall_time_line(seconds)}", "",
             "## The paper's claims", "",
             f"- Mixing cuts the meta-gradient's variance ({PAPER_VARIANCE_RATIO}, the abstract). Scale-free: per "
             "estimator the relative variance trace(Cov) / |mean|^2 of its meta-gradients at the run's "
             "(theta, eta); the ratio K-step / mixed per seed is the geometric mean over the evaluations after "
             f"the start ({evaluations_used} per run) of both runs of that K (the K-step run and the mixed run), "
             "both estimators from the same unrolls; the interval is a 95% Student-t interval over the seeds of "
             "those per-seed log ratios. Raw: the same with trace(Cov) alone, which also counts the mixed "
             "estimator's smaller mean.",
             "- Cosine to the reference: the mean cosine of each of M samples to the mean of R others drawn apart "
             "(its own reference); the bias proxy is the cosine of a mixture's reference to the K-step one's.",
             "- At similar or higher return: per seed, the mixed run's return minus the K-step run's (each the "
             "mean of the last 10% of training; both runs start from the same seed's network and environments), "
             "95% Student-t interval over the seeds.", "", *_claims(summary), "",
             "## Meta-parameters at equal numbers of meta-updates", "",
             "A meta-update is K inner updates, so at equal env steps K = 1 has made 8x the meta-updates of K = 8; "
             f"here every meta method is read after the same counts ({', '.join(map(str, summary['meta_update_counts']))}"
             " meta-updates: the last is the smallest count a meta method ends with, that of the longest K, rounded down to "
             "a point every method logged).", "",
             *_trajectory_rows(summary), "", "![meta-parameters](meta-parameters.png)", "",
             "## Methods", "", "Return: the mean of `episode_return` over the last 10% of training, per seed.", "",
             *_method_rows(summary), "",
             f"![return, gamma and lambda]({study.name}.png)", "", "![relative variance](variance.png)", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def studies_of(protocol: str) -> tuple[Study, ...]:
    """The studies of the protocol."""
    return STUDIES


def reproduce(out: str = "runs/reproduce-metagrad", seeds: int = SEEDS, scale: float = 1.0,
              studies: tuple[str, ...] | None = None, progress: bool = True, protocol: str = PROTOCOL) -> Path:
    """Run every method (iterations multiplied by `scale`), write the report; returns its path."""
    from fluxrl.core.config import check_choice

    check_choice("protocol", protocol, PROTOCOLS)
    return run_reproduction(studies_of(protocol), study_config, summarise, write_report, protocol, out, seeds, scale,
                            studies, progress)


def rebuild_report(out: str = "runs/reproduce-metagrad") -> Path:
    """report.md again from the runs already in `out`."""
    return rebuild_from_runs(out, STUDIES, summarise, write_report, PROTOCOL)

