"""`fluxrl data make`: D4RL-style datasets made locally, deterministic given a seed, written atomically.

maze2d follows D4RL's recipe (scripts/generation/generate_maze2d_datasets.py): a point mass that never resets
is driven by a PD controller (p = 10, d = -1) along the waypoints a grid planner gives to a random target cell;
on arrival a new target is drawn. Rewards are relabelled to the fixed evaluation goal from each transition's
next observation (the environment's own reward), and `timeouts` mark every episode length (300 / 600 / 800), so
the data cut into episodes looks like evaluation episodes. A target not reached within one episode length is
given up (D4RL does the same) and counts against the controller's success rate.

Default sizes are D4RL's (umaze 1M, medium 2M, large 4M transitions). On the idle 2-core machine umaze's 1M
took 28 s (36k transitions/s; the simulator is MuJoCo on the host); medium and large scale with their size. The
controller reached every target it was given on all three mazes (13,721 of 13,721 on umaze, seed 0).

The locomotion names ({halfcheetah,hopper,walker2d}-{random,medium,medium-replay,medium-expert,expert}) are made
by `fluxrl.offline.mujoco_data`.

A made file is `<data_dir>/<name>.hdf5` in D4RL's format; its attributes record how it was made (seed, size,
controller success rate, wall time), and `make` reuses it when asked for the same again.
"""

from __future__ import annotations

import collections
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from fluxrl.core.config import ConfigError, check_range
from fluxrl.core.progress import Progress
from fluxrl.offline import datasets

# D4RL's maze2d-v1 sizes (transitions); the time each takes is in the module docstring.
MAZE2D_SIZES = {"umaze": 1_000_000, "medium": 2_000_000, "large": 4_000_000}
# D4RL's WaypointController gains: action = P_GAIN * (waypoint - position) + D_GAIN * velocity, clipped to [-1, 1].
P_GAIN = 10.0
D_GAIN = -1.0
# D4RL's solve_thresh: a waypoint (or the target) is reached within this distance.
ARRIVAL_DISTANCE = 0.1
# Waypoints and targets are cell centres moved by U(-WAYPOINT_JITTER, WAYPOINT_JITTER) per axis, so the data do not
# lie on a lattice (D4RL jitters by 0.2 one way); well inside a cell's 0.4 margin for the point's 0.1 radius.
WAYPOINT_JITTER = 0.1
# File attribute prefix of what `make` records about a made dataset.
INFO_PREFIX = "fluxrl_make_"
# Transitions between progress-bar updates.
PROGRESS_EVERY = 5000
MAZE2D_GENERATOR = "maze2d grid planner + PD controller"


def names() -> tuple[str, ...]:
    """Every name `make` can make."""
    return tuple(datasets.SPECS)


def check_name(name: str) -> None:
    """ConfigError listing the names unless `make` can make `name`."""
    if name not in datasets.SPECS:
        raise ConfigError(f"unknown dataset {name!r}; fluxrl makes {', '.join(names())}.")


def path_for(name: str, data_dir: str | os.PathLike) -> Path:
    """Where `make` writes `name` in `data_dir`."""
    return Path(data_dir).expanduser() / f"{name}.hdf5"


def make(name: str, data_dir: str | os.PathLike, size: int | None = None, seed: int = 0, progress: bool = True,
         overwrite: bool = False) -> Path:
    """Make the D4RL-style dataset `name` into `<data_dir>/<name>.hdf5` (atomically); reuse a finished one.

    A file already there is returned untouched unless `overwrite`; one made with another seed or size than
    asked for is a ConfigError (pass overwrite to replace it). `info(path)` tells how the file was made.
    """
    check_name(name)
    if size is not None:
        check_range("size", size, 1)
    path = path_for(name, data_dir)
    if path.exists() and not overwrite:
        _check_reusable(path, name, size, seed)
        return path
    started = time.perf_counter()
    if name.startswith("maze2d-"):
        from fluxrl.envs.control import maze2d

        layout = maze2d.parse_name(name)[0]
        dataset, made = make_maze2d_dataset(name, MAZE2D_SIZES[layout.name] if size is None else size, seed,
                                            progress)
    else:
        from fluxrl.offline.mujoco_data import make_mujoco_dataset

        # size None: the maker's default (D4RL's; for medium-replay, whatever the replay buffer holds).
        dataset, made = make_mujoco_dataset(name, size, seed, progress), {}
    wall_seconds = time.perf_counter() - started
    made_size = len(dataset.observations)
    made = {"name": name, "seed": int(seed), "size": made_size, "requested_size": 0 if size is None else int(size),
            "wall_seconds": wall_seconds, "transitions_per_second": made_size / max(wall_seconds, 1e-9), **made}
    _write(dataset, path, datasets.SPECS[name], made)
    return path


def info(path: str | os.PathLike) -> dict[str, Any]:
    """How `make` made the file at `path` (name, seed, size, wall_seconds, success_rate...); {} for other files."""
    import h5py

    with h5py.File(path, "r") as file:
        return {key.removeprefix(INFO_PREFIX): _plain(value) for key, value in file.attrs.items()
                if key.startswith(INFO_PREFIX)}


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    return value.item() if isinstance(value, np.generic) else value


def _check_reusable(path: Path, name: str, size: int | None, seed: int) -> None:
    """ConfigError when the file at `path` was made with another seed or size than asked for."""
    try:
        made = info(path)
    except OSError:
        raise ConfigError(f"{path} exists but is not a readable dataset; pass --overwrite to make {name} again.") \
            from None
    if not made:
        return  # a file fluxrl did not make (e.g. D4RL's own): the user put it there to be used
    requested = 0 if size is None else size  # 0: the default size
    if made.get("seed") != seed or made.get("requested_size") != requested:
        raise ConfigError(f"{path} was made with seed {made.get('seed')} and {_size_text(made.get('requested_size'))}"
                          f", not seed {seed} and {_size_text(requested)}; pass --overwrite to make it again.")


def _size_text(requested_size) -> str:
    return "the default size" if requested_size == 0 else f"size {requested_size}"


def _write(dataset: datasets.Dataset, path: Path, spec: datasets.DatasetSpec, made: dict[str, Any]) -> None:
    """Write `dataset` with `made` as attributes, appearing at `path` complete or not at all."""
    import h5py

    from fluxrl.core.checkpoint import atomic_file

    with atomic_file(path, suffix=".partial") as partial:
        datasets.save(dataset, partial, spec)
        with h5py.File(partial, "a") as file:
            for key, value in made.items():
                file.attrs[INFO_PREFIX + key] = value


# ------------------------------------------------------------------------------------------------ maze2d

class GridPlanner:
    """Shortest routes between free cells of a maze (breadth-first search, 4-connected), ties broken at random."""

    MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))

    def __init__(self, walls: np.ndarray):
        self.walls = np.asarray(walls, dtype=bool)
        self._distances: dict[tuple[int, int], np.ndarray] = {}

    def distances_to(self, target: tuple[int, int]) -> np.ndarray:
        """Steps from every cell to `target` (-1 on walls and cells that cannot reach it)."""
        if target not in self._distances:
            distance = np.full(self.walls.shape, -1, dtype=np.int64)
            distance[target] = 0
            queue = collections.deque([target])
            while queue:
                i, j = queue.popleft()
                for di, dj in self.MOVES:
                    cell = (i + di, j + dj)
                    if not self.walls[cell] and distance[cell] < 0:
                        distance[cell] = distance[i, j] + 1
                        queue.append(cell)
            self._distances[target] = distance
        return self._distances[target]

    def route(self, start: tuple[int, int], target: tuple[int, int], rng: np.random.Generator) -> list:
        """The cells after `start` up to and including `target` on a shortest path ([] when start is target)."""
        distance = self.distances_to(target)
        if distance[start] < 0:
            raise ValueError(f"cell {target} cannot be reached from {start}.")
        cells, cell = [], start
        while cell != target:
            # Walls hold -1, never one step closer than a free cell (which is >= 1 here).
            closer = [(cell[0] + di, cell[1] + dj) for di, dj in self.MOVES
                      if distance[cell[0] + di, cell[1] + dj] == distance[cell] - 1]
            cell = closer[rng.integers(len(closer))]
            cells.append(cell)
        return cells


def pd_action(position: np.ndarray, velocity: np.ndarray, waypoint: np.ndarray) -> np.ndarray:
    """D4RL's waypoint controller: clip(P_GAIN (waypoint - position) + D_GAIN velocity, -1, 1)."""
    # minimum/maximum: np.clip's dispatch costs more than the simulator step on arrays this small.
    return np.minimum(np.maximum(P_GAIN * (waypoint - position) + D_GAIN * velocity, -1.0), 1.0)


def _distance(point, position) -> float:
    # math.hypot: np.linalg.norm's overhead dominates on 2-vectors in this per-step loop.
    return math.hypot(point[0] - position[0], point[1] - position[1])


def make_maze2d_dataset(name: str, size: int, seed: int = 0,
                        progress: bool = False) -> tuple[datasets.Dataset, dict[str, Any]]:
    """`size` transitions of the planner + PD controller in maze2d `name`, and the controller's record
    (targets_reached, targets_given_up, success_rate = reached / (reached + given up))."""
    from fluxrl.envs.control import maze2d

    check_range("size", size, 1)
    layout, reward_type = maze2d.parse_name(name)
    env = maze2d.Maze2dEnv(layout, reward_type)
    rng = np.random.default_rng(seed)
    planner = GridPlanner(layout.walls)
    observations = np.empty((size, 4), dtype=np.float32)
    next_observations = np.empty((size, 4), dtype=np.float32)
    actions = np.empty((size, 2), dtype=np.float32)

    def new_route(position):
        target_cell = layout.free_cells[rng.integers(len(layout.free_cells))]
        cells = planner.route(maze2d.cell_of(position), target_cell, rng)
        if not cells:
            cells = [target_cell]
        return [maze2d.cell_center(cell) + rng.uniform(-WAYPOINT_JITTER, WAYPOINT_JITTER, size=2) for cell in cells]

    observation, _ = env.reset(seed=seed)
    waypoints, waypoint_index, steps_on_target = new_route(observation), 0, 0
    reached = given_up = 0
    bar = Progress(progress, size, 0, ("targets_reached",), "transitions", description=f"making {name}")
    try:
        for step in range(size):
            position, velocity = observation[:2].astype(np.float64), observation[2:].astype(np.float64)
            last = len(waypoints) - 1
            if waypoint_index < last and _distance(waypoints[waypoint_index], position) < ARRIVAL_DISTANCE:
                waypoint_index += 1
            action = pd_action(position, velocity, waypoints[waypoint_index])
            next_observation, _, _, _, _ = env.step(action)
            observations[step], actions[step], next_observations[step] = observation, action, next_observation
            observation, steps_on_target = next_observation, steps_on_target + 1
            at_target = waypoint_index == last and \
                _distance(waypoints[last], next_observation) < ARRIVAL_DISTANCE
            if at_target or steps_on_target >= layout.episode_steps:
                reached, given_up = reached + at_target, given_up + (not at_target)
                waypoints, waypoint_index, steps_on_target = new_route(next_observation), 0, 0
            if (step + 1) % PROGRESS_EVERY == 0 or step + 1 == size:
                shown = {"targets_reached": reached / (reached + given_up)} if reached + given_up else {}
                bar.advance(step + 1, metrics=shown)
    finally:
        bar.close()
    env.close()
    timeouts = np.zeros(size, dtype=np.float32)
    timeouts[layout.episode_steps - 1::layout.episode_steps] = 1.0
    dataset = datasets.Dataset(
        observations=observations, actions=actions,
        rewards=maze2d.goal_reward(next_observations[:, :2], layout.goal, reward_type),
        terminals=np.zeros(size, dtype=np.float32), timeouts=timeouts, next_observations=next_observations)
    record = {"generator": MAZE2D_GENERATOR, "targets_reached": reached, "targets_given_up": given_up,
              "success_rate": reached / max(reached + given_up, 1)}
    return dataset, record
