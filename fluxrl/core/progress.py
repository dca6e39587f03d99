"""The progress bar of a training run: iterations, throughput in the algorithm's unit, the latest key metrics."""

from __future__ import annotations


class Progress:
    """A rich progress bar, or nothing when disabled."""

    def __init__(self, enabled: bool, total: int, start: int, shown: tuple[str, ...], unit: str):
        self.bar = None
        self.shown = shown
        self.unit = unit
        if enabled:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn,
                                       TimeRemainingColumn)

            self.bar = RichProgress(TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(),
                                    TextColumn("{task.fields[speed]}"), TimeRemainingColumn(),
                                    TextColumn("{task.fields[metric]}"), transient=False)
            self.task = self.bar.add_task("train", total=total, completed=start, speed="", metric="")
            self.bar.start()

    def advance(self, iteration: int, units_per_second: float, metrics: dict[str, float]) -> None:
        """Move to `iteration`, showing throughput and the latest values of the shown metrics."""
        if self.bar is None:
            return
        text = "  ".join(f"{name} {metrics[name]:.4g}" for name in self.shown if name in metrics)
        speed = f"{units_per_second:,.0f} {self.unit}/s"
        self.bar.update(self.task, completed=iteration, speed=speed, metric=text)

    def close(self) -> None:
        """Stop drawing."""
        if self.bar is not None:
            self.bar.stop()
