"""The progress of a long job (a training run, making a dataset): steps done, throughput in the job's unit, the
latest key metrics.

On a terminal it is a rich progress bar. Where output is not a terminal (a log file, a batch job, CI) a bar would
be cut or repeated, so whole lines are printed instead: one when the run starts, then at most one every
`LINE_SECONDS`, and one at the end.
"""

from __future__ import annotations

import sys
import time

LINE_SECONDS = 30.0


class Progress:
    """A rich progress bar on a terminal, periodic whole lines elsewhere, or nothing when disabled."""

    def __init__(self, enabled: bool, total: int, start: int, shown: tuple[str, ...], unit: str,
                 stream=None, line_seconds: float = LINE_SECONDS, description: str = "training"):
        self.bar = None
        self.description = description
        self.lines = False
        self.shown, self.unit, self.total, self.start = shown, unit, total, start
        self.stream = stream if stream is not None else sys.stdout
        self.line_seconds = line_seconds
        self.began = self.last_line = time.monotonic()
        self.latest: tuple[int, str, str] | None = None
        self.printed: int | None = None
        if not enabled:
            return
        if not _is_terminal(self.stream):
            self.lines = True
            self._print(start, "", "")
            return
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn,
                                   TimeRemainingColumn)

        self.bar = RichProgress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[speed]}"), TimeRemainingColumn(),
                                TextColumn("{task.fields[metric]}"), transient=False)
        self.task = self.bar.add_task(description, total=total, completed=start, speed="", metric="")
        self.bar.start()

    def advance(self, iteration: int, units_per_second: float | None = None,
                metrics: dict[str, float] | None = None) -> None:
        """Move to `iteration`, showing throughput (None: units done since the start over the time since) and the
        latest values of the shown metrics."""
        if self.bar is None and not self.lines:
            return
        if units_per_second is None:
            units_per_second = (iteration - self.start) / max(time.monotonic() - self.began, 1e-9)
        metrics = metrics or {}
        text = "  ".join(f"{name} {metrics[name]:.4g}" for name in self.shown if name in metrics)
        speed = f"{units_per_second:,.0f} {self.unit}/s"
        if self.bar is not None:
            self.bar.update(self.task, completed=iteration, speed=speed, metric=text)
            return
        self.latest = (iteration, speed, text)
        if time.monotonic() - self.last_line >= self.line_seconds:
            self._print(iteration, speed, text)

    def close(self) -> None:
        """Stop drawing (on a log, print the last state unless it was just printed)."""
        if self.bar is not None:
            self.bar.stop()
        elif self.lines and self.latest is not None and self.latest[0] != self.printed:
            self._print(*self.latest)

    def _print(self, iteration: int, speed: str, text: str) -> None:
        done = iteration - self.start
        elapsed = time.monotonic() - self.began
        left = ""
        if done > 0 and iteration < self.total:
            left = f", {_clock(elapsed / done * (self.total - iteration))} left"
        parts = [f"{self.description} {iteration:,}/{self.total:,} ({100 * iteration / self.total:.0f}%)",
                 f"{_clock(elapsed)} elapsed{left}"]
        print("  ".join(part for part in (", ".join(parts), speed, text) if part), file=self.stream, flush=True)
        self.printed, self.last_line = iteration, time.monotonic()


def _is_terminal(stream) -> bool:
    """Whether `stream` shows a live bar: an interactive terminal or a notebook (rich's own detection)."""
    from rich.console import Console

    console = Console(file=stream)
    return console.is_terminal or console.is_jupyter


def _clock(seconds: float) -> str:
    """h:mm:ss."""
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
