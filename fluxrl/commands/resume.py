"""`fluxrl train FAMILY --resume DIR [--iterations N]`: continue a run of any family from its last checkpoint.

The run's own command (stored in its config.json when it started) is rebuilt as it was, so the dataset, the
environment and every option are those of the run; only the iteration count may grow. A GFlowNet run is rebuilt
from its stored algorithm and config (with a sweep trial's hyperparameter axis), which every GFlowNet run has,
older ones included. A resumed run ends where an uninterrupted one would (tests/test_resume_families.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

from fluxrl.core.config import ConfigError

FAMILIES = ("gflownet", "offline", "onpolicy", "meta")
HELP_FLAGS = ("-h", "--help")
ADDABLE = ("--progress", "--no-progress")  # options a resumed run may add besides --resume and --iterations


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


def check_args(args: list[str]) -> list[str]:
    """`args` when they only add --iterations / --progress / --no-progress to --resume; ConfigError naming any
    other option (a resumed run keeps its stored config)."""
    index = 0
    while index < len(args):
        arg = args[index]
        name = arg.split("=", 1)[0]
        if name in ("--resume", "--iterations"):
            index += 1 if "=" in arg else 2
        elif name in HELP_FLAGS + ADDABLE:
            index += 1
        else:
            raise ConfigError(f"{arg} cannot be given with --resume: a resumed run keeps its stored config; "
                              f"only --iterations (to extend it) and --progress / --no-progress may be added.")
    return args


def stored_command(family: str, resume: ResumeRun):
    """The family's command that started the run in `resume.resume`, pointed at it, with the new iterations."""
    from fluxrl.core.config import from_typed
    from fluxrl.core.rundir import read_run

    from fluxrl.commands.families import family as family_named

    stored = read_run(resume.resume)
    expected = family_named(family).command_type
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
    if family == "gflownet":
        from fluxrl.commands import train_gflownet

        return train_gflownet.execute(resume)
    from fluxrl.commands.families import family as family_named

    return family_named(family).execute(stored_command(family, resume), resume=True)
