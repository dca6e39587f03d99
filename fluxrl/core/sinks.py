"""Where metrics go: a CSV file always, TensorBoard and Weights & Biases when asked."""

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


class WandbSink:
    """Logs the across-seed mean of each metric to Weights & Biases (`pip install 'fluxrl[wandb]'`), files under
    DIR/wandb. Online when WANDB_MODE says so or an API key is set (WANDB_API_KEY); otherwise offline, to sync
    later with `wandb sync DIR/wandb/offline-run-*`."""

    def __init__(self, directory: Path, project: str, name: str, config: dict, resume_id: str | None = None):
        import os

        try:
            import wandb
        except ImportError:
            from fluxrl.core.config import ConfigError

            raise ConfigError("--wandb needs the wandb package: pip install 'fluxrl[wandb]'.") from None
        mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
        self.run = wandb.init(project=project, name=name, config=config, dir=str(directory), mode=mode,
                              id=resume_id, resume="allow" if resume_id else None, reinit="create_new")

    @classmethod
    def for_run(cls, directory: Path, project: str, config: dict, resume: bool) -> "WandbSink":
        """The sink of the run in `directory`, named after it; on resume, the W&B run it logged to before."""
        id_file = Path(directory) / "wandb" / "fluxrl-run-id"
        resume_id = id_file.read_text().strip() if resume and id_file.exists() else None
        id_file.parent.mkdir(parents=True, exist_ok=True)
        sink = cls(directory, project, Path(directory).resolve().name, config, resume_id)
        atomic_write_bytes(id_file, sink.run.id.encode())
        return sink

    def write(self, iteration: int, metrics: dict[str, float]) -> None:
        """One point per metric at `iteration`."""
        self.run.log(metrics, step=iteration)

    def close(self) -> None:
        """Finish the W&B run."""
        self.run.finish()
