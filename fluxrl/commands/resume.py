"""`fluxrl train {offline,onpolicy,meta} --resume DIR [--iterations N]`: continue a run from its last checkpoint.

The run's own command (stored in its config.json when it started) is rebuilt as it was, so the dataset, the
environment and every option are those of the run; only the iteration count may grow. A resumed run ends where an
uninterrupted one would (tests/test_resume_families.py). GFlowNet runs have their own `train gflownet --resume`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

from fluxrl.core.config import ConfigError

FAMILIES = ("offline", "onpolicy", "meta")


@dataclass(frozen=True)
class ResumeRun:
    """Continue a run from its last checkpoint with the options it was started with."""

    resume: str
    """Run directory to continue (it holds config.json and a checkpoint)."""
    iterations: Optional[int] = None
    """Train up to this many iterations in all (default: the run's own)."""
    progress: bool = True
    """Show a progress bar."""


def is_resume(args: list[str]) -> bool:
    """Whether a `train FAMILY` command line asks to resume."""
    return any(arg == "--resume" or arg.startswith("--resume=") for arg in args)


def _module(family: str):
    from fluxrl.commands import train_meta, train_offline, train_onpolicy

    return {"offline": train_offline, "onpolicy": train_onpolicy, "meta": train_meta}[family]


def stored_command(family: str, resume: ResumeRun):
    """The family's command that started the run in `resume.resume`, pointed at it, with the new iterations."""
    from fluxrl.core.config import from_typed
    from fluxrl.core.rundir import read_run

    stored = read_run(resume.resume)
    module = _module(family)
    expected = next(value for name, value in vars(module).items() if name.startswith("Train") and
                    isinstance(value, type) and dataclasses.is_dataclass(value))
    if "command" not in stored:
        raise ConfigError(f"--resume {resume.resume}: its config.json holds no command to rebuild (a "
                          f"{stored['algorithm']} run written by `fluxrl train {family}` stores one).")
    command = from_typed(stored["command"])
    if not isinstance(command, expected):
        raise ConfigError(f"--resume {resume.resume} holds a {stored['algorithm']} run, not one of "
                          f"`fluxrl train {family}`.")
    if hasattr(command, "algorithm") and "typed_config" in stored:
        # the config as trained: settings filled from the run's length (IQL's actor decay) keep their stored values
        command = dataclasses.replace(command, algorithm=from_typed(stored["typed_config"]))
    run = dataclasses.replace(command.run, out=resume.resume, overwrite=False, progress=resume.progress,
                              iterations=command.run.iterations if resume.iterations is None else resume.iterations)
    return dataclasses.replace(command, run=run)


def execute(family: str, resume: ResumeRun) -> int:
    """Continue the run; exit status 0."""
    return _module(family).execute(stored_command(family, resume), resume=True)
