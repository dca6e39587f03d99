"""Use a trained run: `fluxrl sample` draws objects from a GFlowNet, `fluxrl evaluate` runs a policy's episodes.

    fluxrl sample runs/parentheses --n 10000 --out samples.csv [--seed 0] [--seed-index 0]
    fluxrl evaluate runs/fpo-pendulum --episodes 20 [--seed 0] [--seed-index 0] [--video episode.gif]

A sample row is one terminal object (the environment's state fields), its log-reward and the log-probability of
the trajectory that built it (see `fluxrl.trained`). An evaluation prints the mean return (and an offline run's
normalised score) and each episode's return; `--video` also films one episode (see `fluxrl.video`).
"""

from __future__ import annotations

from dataclasses import dataclass

import tyro

from fluxrl.core.config import ConfigError, check_range


@dataclass(frozen=True)
class Sample:
    """Draw objects from a trained GFlowNet run and write them, their log-rewards and log-probabilities."""

    run: tyro.conf.Positional[str]
    """Run directory of a trained GFlowNet (it holds config.json and checkpoint.npz)."""
    n: int = 1000
    """Objects to draw."""
    out: str = "samples.csv"
    """File to write: .csv (one row per object) or .npz (one array per field)."""
    seed: int = 0
    """Seed of the draw."""
    seed_index: int = 0
    """Which of the run's seeds samples (0 .. num_seeds - 1)."""

    def __post_init__(self):
        check_range("n", self.n, 1)
        check_range("seed", self.seed, 0)
        if not self.out.endswith((".csv", ".npz")):
            raise ConfigError(f"--out must end in .csv or .npz, got {self.out}.")


def check(command: Sample) -> None:
    """ConfigError unless the run is a GFlowNet run that loads; writes nothing."""
    from fluxrl.core.rundir import read_run
    from fluxrl.gflownet.algorithms import ALGORITHMS

    stored = read_run(command.run)
    if stored["algorithm"] not in ALGORITHMS:
        raise ConfigError(f"{command.run} holds a {stored['algorithm']} run; `fluxrl sample` draws from GFlowNets "
                          "(a policy acts: `fluxrl.load(run).act(key, observation)`).")


def execute(command: Sample) -> int:
    """Load the run, draw, write; exit status 0."""
    import jax

    from fluxrl.trained import load, save_samples

    check(command)
    trained = load(command.run, command.seed_index)
    samples = trained.sample(jax.random.PRNGKey(command.seed), command.n)
    path = save_samples(samples, command.out)
    print(f"{command.n:,} objects of {command.run} (iteration {trained.iteration:,}, seed index "
          f"{command.seed_index}) written to {path}")
    return 0


@dataclass(frozen=True)
class Evaluate:
    """Run episodes of a trained policy (on-policy or offline run) and print their returns."""

    run: tyro.conf.Positional[str]
    """Run directory of a trained policy."""
    episodes: int = 10
    """Episodes to run."""
    seed: int = 0
    """Seed of the episodes."""
    seed_index: int = 0
    """Which of the run's seeds acts (0 .. num_seeds - 1)."""
    max_steps: int = 1000
    """The most steps of an on-policy episode or of a filmed one (the environment's own time limit ends it earlier)."""
    video: str | None = None
    """Also film one episode from the same seed into this file (.gif, or .mp4 with imageio-ffmpeg installed)."""

    def __post_init__(self):
        check_range("episodes", self.episodes, 1)
        check_range("seed", self.seed, 0)
        check_range("max_steps", self.max_steps, 1)
        if self.video is not None:
            from fluxrl.video import check_video_path

            check_video_path(self.video)


def check_evaluate(command: Evaluate) -> None:
    """ConfigError unless the run holds a policy; writes nothing."""
    from fluxrl.core.rundir import read_run
    from fluxrl.gflownet.algorithms import ALGORITHMS

    stored = read_run(command.run)
    if stored["algorithm"] in ALGORITHMS:
        raise ConfigError(f"{command.run} holds a GFlowNet; draw from it with `fluxrl sample`.")


def execute_evaluate(command: Evaluate) -> int:
    """Load the run, run the episodes, print the returns; exit status 0."""
    from fluxrl.trained import load

    check_evaluate(command)
    trained = load(command.run, command.seed_index)
    result = trained.evaluate(command.episodes, command.seed, command.max_steps)
    for name, value in result.items():
        text = ", ".join(f"{v:.4g}" for v in value) if isinstance(value, list) else f"{value:.6g}"
        print(f"  {name:<20}  {text}")
    what = "held-out data" if "heldout_action_error" in result else f"{command.episodes} episodes"
    print(f"{what} of {command.run} (iteration {trained.iteration:,}, seed index {command.seed_index})")
    if command.video is not None:
        from fluxrl.video import record

        path, total = record(trained, command.video, command.seed, command.max_steps)
        print(f"one episode (return {total:.6g}) filmed into {path}")
    return 0
