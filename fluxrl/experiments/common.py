"""What every paper reproduction shares: a study spec, running its methods, reading curves, plotting them.

Every study x method is one run; an executor (`fluxrl.sweep.executors`) runs them: one after another in this
process by default, or as Ray tasks inside `with using_executor(RayExecutor(...))` (`fluxrl reproduce NAME
--executor ray`). The report is written here from the runs' rows either way.
"""

from __future__ import annotations

import contextlib
import contextvars
import csv
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

# The executor of the runs (None: one after another in this process); set by `using_executor`.
_EXECUTOR: contextvars.ContextVar[Any] = contextvars.ContextVar("reproduction_executor", default=None)


@dataclass(frozen=True)
class Study:
    """One environment of the reproduction: shared config, methods compared, budget and what is plotted."""

    name: str
    title: str
    config: dict
    methods: tuple[str, ...]
    iterations: int
    eval_every: int
    curves: tuple[str, ...]  # metrics plotted over iterations
    headline: str  # the metric the claim is about
    lower_is_better: bool
    method_overrides: dict = field(default_factory=dict)  # per-method config changes
    eval_at_start: bool = True  # also evaluate the untrained model (a curve's first point)
    seeds: int | None = None  # seeds of this study's runs; None: the reproduction's --seeds


@contextlib.contextmanager
def using_executor(executor: Any) -> Iterator[None]:
    """Run the reproductions' study x method runs with `executor` (see `fluxrl.sweep.executors`) in this block."""
    token = _EXECUTOR.set(executor)
    try:
        yield
    finally:
        _EXECUTOR.reset(token)


def method_dir(out: Path, study: Study, method: str) -> Path:
    """The run directory of one method of a study."""
    return out / study.name / method.lower().replace(" ", "-")


def run_method(study: Study, method: str, out: Path, seeds: int, progress: bool,
               config_of: Callable[[Study, str], tuple]) -> tuple[list[dict], float]:
    """Train one method of a study (its algorithm, config and optional shared data from `config_of(study,
    method)`); its metrics.csv rows and the wall seconds it took."""
    from fluxrl.core.runner import RunConfig, run

    began = time.perf_counter()
    run_dir = method_dir(out, study, method)
    seeds = study.seeds or seeds
    log_every = max(study.iterations // 100, 1)
    run_config = RunConfig(iterations=study.iterations, num_seeds=seeds, out=str(run_dir),
                           log_every=log_every, eval_every=study.eval_every, eval_at_start=study.eval_at_start,
                           checkpoint_every=study.iterations, overwrite=True, progress=progress)
    if progress:
        print(f"[{study.name}] {method}: {study.iterations} iterations x {seeds} seeds")
    # config_of gives (algorithm, config) or (algorithm, config, data) when the runs share an input
    algorithm, config, *data = config_of(study, method)
    run(algorithm, config, run_config, data=data[0] if data else None)
    with (run_dir / "metrics.csv").open() as file:
        return list(csv.DictReader(file)), time.perf_counter() - began


def run_studies(studies: list[Study], out: Path, seeds: int, progress: bool,
                config_of: Callable[[Study, str], tuple]) -> dict[str, tuple[dict[str, list[dict]], float]]:
    """Train every method of every study with the current executor; per study, each method's metrics.csv rows
    and the seconds its runs took together. A failure stops the reproduction (every run is needed)."""
    from fluxrl.sweep.executors import LocalExecutor, Task

    executor = _EXECUTOR.get() or LocalExecutor()
    if executor.remote:  # workers elsewhere start in other directories; parallel progress bars would interleave
        out, progress = Path(out).resolve(), False
    pairs = [(study, method) for study in studies for method in study.methods]
    tasks = [Task(f"{study.name}/{method}", run_method, (study, method, out, seeds, progress, config_of))
             for study, method in pairs]
    outcomes = executor.run(tasks, keep_going=False)
    ran: dict[str, tuple[dict[str, list[dict]], float]] = {study.name: ({}, 0.0) for study in studies}
    for (study, method), outcome in zip(pairs, outcomes):
        rows, seconds = outcome.result
        ran[study.name][0][method] = rows
        ran[study.name] = (ran[study.name][0], ran[study.name][1] + seconds)
    return ran


def curve(rows: list[dict], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(iterations, values [seeds, points]) of a metric at the iterations every seed logged it."""
    by_seed: dict[int, dict[int, float]] = {}
    for row in rows:
        if row.get(metric, "") != "":
            by_seed.setdefault(int(row["seed"]), {})[int(row["iteration"])] = float(row[metric])
    iterations = sorted(set.intersection(*(set(v) for v in by_seed.values())))
    return np.array(iterations), np.array([[by_seed[s][i] for i in iterations] for s in sorted(by_seed)])


def plot_study(study: Study, rows: dict[str, list[dict]], path: Path, seeds: int, protocol: str) -> Path:
    """Curves of a study's metrics: mean over seeds, band from min to max."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(study.curves), figsize=(5.2 * len(study.curves), 4), squeeze=False,
                                constrained_layout=True)
    for axis, metric in zip(axes[0], study.curves):
        for method, method_rows in rows.items():
            x, values = curve(method_rows, metric)
            line, = axis.plot(x, values.mean(axis=0), label=method)
            axis.fill_between(x, values.min(axis=0), values.max(axis=0), color=line.get_color(), alpha=0.2)
        axis.set(xlabel="iteration", ylabel=metric, title=metric)
        if metric in ("tv", "l1_sum"):
            axis.set_yscale("log")
        axis.grid(alpha=0.3)
        axis.legend()
    # Wrapped to the figure's width: a single-panel figure is too narrow for the whole title on one line.
    title = textwrap.fill(f"{study.title}: mean of {seeds} seeds, band = min..max ({protocol})",
                          width=int(60 * len(study.curves)))
    figure.suptitle(title, fontsize=10)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def metrics_table(study: Study, final: dict) -> list[str]:
    """Markdown rows: one per method, the final mean ± std over seeds of each plotted metric."""
    lines = ["| method | " + " | ".join(study.curves) + " |", "|---|" + "---|" * len(study.curves)]
    for method, metrics in final.items():
        cells = [f"{m['mean']:.4g} ± {m['std']:.2g}" for m in (metrics[c] for c in study.curves)]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def paired_outcome(a: dict, b: dict) -> str:
    """better / worse / tie of final metric `a` ({"mean", "std"}) against `b`, higher being better: a gap inside the
    larger of the two seed standard deviations (the noise floor) is a tie."""
    margin, tolerance = a["mean"] - b["mean"], max(a["std"], b["std"])
    return "better" if margin > tolerance else ("worse" if margin < -tolerance else "tie")


def claim_verdict(outcome: str, parity: bool = False) -> str:
    """Whether a paired outcome (better / tie / worse of the paper's method) goes the paper's way: a claim of parity
    holds on a tie or better; a claim that the method is better holds on better and is not separated on a tie."""
    if parity:
        return "held" if outcome in ("tie", "better") else "not held"
    return "held" if outcome == "better" else ("not separated" if outcome == "tie" else "not held")


def protocol_markdown(rows, source: str = "official code (path:line)") -> list[str]:
    """The protocol table (setting | `source` | ours | why they differ, "same" where no reason) as markdown rows."""
    lines = [f"| setting | {source} | ours | why they differ |", "|---|---|---|---|"]
    return lines + [f"| {a} | {b} | {c} | {d or 'same'} |" for a, b, c, d in rows]


def wall_time_line(seconds: dict[str, float]) -> str:
    """One report line: the whole reproduction's wall time and each study's share."""
    parts = ", ".join(f"{name} {value / 60:.1f}" for name, value in seconds.items())
    return f"Wall time: {sum(seconds.values()) / 60:.1f} min in all ({parts} min), compilation included."


def final_values(study: Study, rows: dict[str, list[dict]]) -> dict:
    """Per method and plotted metric: the last logged value's mean, std and per-seed values."""
    final = {}
    for method, method_rows in rows.items():
        final[method] = {}
        for metric in study.curves:
            _, values = curve(method_rows, metric)
            last = values[:, -1]
            final[method][metric] = {"mean": float(last.mean()), "std": float(last.std()),
                                     "seeds": [float(v) for v in last]}
    return final


def run_reproduction(all_studies: tuple[Study, ...], config_of: Callable[[Study, str], tuple],
                     summarise: Callable[[Study, dict], dict], write_report: Callable[..., Path], protocol: str,
                     out: str, seeds: int, scale: float, studies: tuple[str, ...] | None,
                     progress: bool) -> Path:
    """Run the chosen studies (iterations multiplied by `scale`), save results.json and the plots, and write
    the report with `write_report(studies, results, out_dir, seeds, seconds)`; returns the report's path."""
    import json

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen = scaled([s for s in all_studies if studies is None or s.name in studies], scale)
    results, seconds = {}, {}
    began = time.perf_counter()
    ran = run_studies(chosen, out_dir, seeds, progress, config_of)
    wall, compute = time.perf_counter() - began, sum(spent for _, spent in ran.values())
    for study in chosen:
        rows, spent = ran[study.name]
        # A study's share of the wall time: its runs' own time when they run one after another, and in proportion
        # to it when runs of several studies overlap (on Ray), so that the shares add up to the wall time.
        seconds[study.name] = wall * spent / compute if compute else 0.0
        results[study.name] = summarise(study, rows)
        plot_study(study, rows, out_dir / f"{study.name}.png", study.seeds or seeds, protocol)
    (out_dir / "results.json").write_text(json.dumps({"protocol": protocol, "seeds": seeds, "scale": scale,
                                                      "seconds": seconds, "studies": results}, indent=2) + "\n")
    return write_report(chosen, results, out_dir, seeds, seconds)


def scaled(studies, scale: float) -> list[Study]:
    """The studies with their iterations and evaluation interval multiplied by `scale` (at least 1 each)."""
    from dataclasses import replace

    return [replace(s, iterations=max(int(s.iterations * scale), 1), eval_every=max(int(s.eval_every * scale), 1))
            for s in studies]


def stored_rows(out_dir: Path, study: Study) -> dict[str, list[dict]]:
    """Each method's metrics.csv rows of a study already run in `out_dir`."""
    rows = {}
    for method in study.methods:
        with (method_dir(out_dir, study, method) / "metrics.csv").open() as file:
            rows[method] = list(csv.DictReader(file))
    return rows


def store_run_facts(out_dir: Path, seconds: dict, datasets: dict | None) -> None:
    """Add the wall times and the datasets' facts to out_dir/results.json."""
    import json

    stored = json.loads((out_dir / "results.json").read_text())
    stored.update(seconds=seconds, datasets=datasets)
    (out_dir / "results.json").write_text(json.dumps(stored, indent=2) + "\n")


def rebuild_from_runs(out: str, all_studies, summarise: Callable[[Study, dict], dict],
                      write_report: Callable[..., Path], protocol: str) -> Path:
    """The report again from the runs already in `out` (summaries, plots, results.json, report.md)."""
    import json

    out_dir = Path(out)
    stored = json.loads((out_dir / "results.json").read_text())
    chosen = scaled([s for s in all_studies if s.name in stored["studies"]], stored["scale"])
    results = {}
    for study in chosen:
        rows = stored_rows(out_dir, study)
        results[study.name] = summarise(study, rows)
        plot_study(study, rows, out_dir / f"{study.name}.png", study.seeds or stored["seeds"], protocol)
    stored["studies"] = results
    (out_dir / "results.json").write_text(json.dumps(stored, indent=2) + "\n")
    return write_report(chosen, results, out_dir, stored["seeds"], stored["seconds"], stored.get("datasets"))
