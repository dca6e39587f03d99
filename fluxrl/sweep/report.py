"""What a sweep leaves: sweep.csv (one row per trial, member and seed), one figure per metric, failures.md."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from fluxrl.core.checkpoint import atomic_write_bytes

TABLE_FILE = "sweep.csv"
FIGURES_DIR = "figures"
FAILURES_FILE = "failures.md"
KEY_COLUMNS = ("trial", "seed")


def swept_column(name: str) -> str:
    """The table column of a swept option: the option as a flag (--lr, --loss), so it never takes the name of a
    metric (the option `loss` and the metric `loss` are different things)."""
    return f"--{name}"


def write_table(path: Path, rows: list[dict], swept: list[str]) -> list[str]:
    """sweep.csv: trial, the swept options, seed, then every metric (empty where a trial lacks it); the metrics."""
    swept = [swept_column(name) for name in swept]
    metrics = sorted({name for row in rows for name in row} - set(KEY_COLUMNS) - set(swept))
    columns = ["trial", *swept, "seed", *metrics]
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, text.getvalue().encode())
    return metrics


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def plot_metrics(out: Path, rows: list[dict], swept: list[str], metrics: list[str]) -> list[Path]:
    """One figure per metric, out/figures/METRIC.png: its final value against the first numeric swept option
    (one line per combination of the others, band from min to max over seeds), or per combination as points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    swept = [swept_column(name) for name in swept]
    numeric = [name for name in swept if all(_number(str(row[name])) is not None for row in rows)
               and len({row[name] for row in rows}) > 1]
    x_name = numeric[0] if numeric else None
    others = [name for name in swept if name != x_name]
    folder = out / FIGURES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for metric in metrics:
        figure, axis = plt.subplots(figsize=(6, 4), constrained_layout=True)
        lines: dict[str, dict] = {}
        for row in rows:
            if row.get(metric) in (None, ""):
                continue
            line = ", ".join(f"{name}={row[name]}" for name in others) or metric
            x = _number(str(row[x_name])) if x_name else ", ".join(f"{n}={row[n]}" for n in swept)
            lines.setdefault(line, {}).setdefault(x, []).append(float(row[metric]))
        for line, points in lines.items():
            xs = sorted(points) if x_name else list(points)
            values = [np.asarray(points[x]) for x in xs]
            means = [v.mean() for v in values]
            drawn, = axis.plot(xs, means, marker="o", label=line)
            axis.fill_between(xs, [v.min() for v in values], [v.max() for v in values], color=drawn.get_color(),
                              alpha=0.2)
        if x_name:
            all_x = [x for points in lines.values() for x in points]
            if all_x and min(all_x) > 0 and max(all_x) / min(all_x) >= 10:
                axis.set_xscale("log")
        else:
            axis.tick_params(axis="x", labelrotation=30)
        axis.set(xlabel=x_name or "swept values", ylabel=metric, title=f"{metric}: mean of seeds, band = min..max")
        axis.grid(alpha=0.3)
        if len(lines) > 1:
            axis.legend(fontsize=8)
        path = folder / f"{metric}.png"
        figure.savefig(path, dpi=100)
        plt.close(figure)
        paths.append(path)
    return paths


def write_failures(path: Path, failed: list[tuple[str, str, str, int]]) -> Path | None:
    """failures.md: each failed trial (name, error line, traceback, attempts); removed when nothing failed."""
    if not failed:
        path.unlink(missing_ok=True)
        return None
    lines = [f"# {len(failed)} failed trial{'s' if len(failed) > 1 else ''}", ""]
    for name, error, details, attempts in failed:
        lines += [f"## {name}", "", f"{error} (after {attempts} attempt{'s' if attempts > 1 else ''})", "",
                  "```", (details or "").rstrip(), "```", ""]
    atomic_write_bytes(path, "\n".join(lines).encode())
    return path
