"""Where metrics go: a CSV file always, TensorBoard when asked."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from fluxrl.core.checkpoint import atomic_write_bytes

METRICS_FILE = "metrics.csv"


class CSVSink:
    """Appends rows (iteration, seed, wall_seconds, metrics...) to metrics.csv; a metric first seen later
    (say, one only evaluation reports) adds a column, left empty in the earlier rows."""

    def __init__(self, directory: Path, columns: list[str]):
        self.path = Path(directory) / METRICS_FILE
        self.columns = ["iteration", "seed", "wall_seconds", *columns]
        if not self.path.exists():
            atomic_write_bytes(self.path, (",".join(self.columns) + "\n").encode())

    def write(self, rows: list[dict]) -> None:
        """Append rows; missing metrics are left empty."""
        new = sorted({name for row in rows for name in row} - set(self.columns))
        if new:
            self._add_columns(new)
        with self.path.open("a", newline="") as file:
            writer = csv.DictWriter(file, self.columns, restval="")
            writer.writerows({k: _format(v) for k, v in row.items()} for row in rows)

    def _add_columns(self, names: list[str]) -> None:
        lines = self.path.read_text().splitlines()
        self.columns = [*self.columns, *names]
        padding = "," * len(names)
        body = [line + padding for line in lines[1:]]
        atomic_write_bytes(self.path, ("\n".join([",".join(self.columns), *body]) + "\n").encode())

    def truncate_after(self, iteration: int) -> None:
        """Drop rows logged after `iteration` (used when resuming from a checkpoint taken there)."""
        if not self.path.exists():
            return
        lines = self.path.read_text().splitlines(keepends=True)
        kept = lines[:1] + [line for line in lines[1:] if int(line.split(",", 1)[0]) <= iteration]
        atomic_write_bytes(self.path, "".join(kept).encode())


def _format(value):
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return value


class TensorBoardSink:
    """Writes the across-seed mean of each metric to TensorBoard event files under DIR/tensorboard."""

    def __init__(self, directory: Path):
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(str(Path(directory) / "tensorboard"))

    def write(self, iteration: int, metrics: dict[str, float]) -> None:
        """One scalar per metric at `iteration`."""
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, iteration)
        self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()
