"""maze2d (D4RL): a force-actuated point mass in a maze, on gymnasium-robotics PointMaze, with D4RL's conventions.

D4RL's maze2d and gymnasium-robotics' PointMaze_{UMaze,Medium,Large}-v3 share the layouts and the MuJoCo model
(timestep 0.01, gear 100, damping 1, velocity clipped to +-5). They differ in conventions, and this adapter
takes D4RL's so that data and scores compare with D4RL's:

- observation: a flat float32 (x, y, vx, vy) in D4RL's coordinates, where x is the maze row and y the column.
  D4RL's particle body sits 0.2 off its walls' grid, so the centre of cell (i, j) is at (i - 0.2, j - 0.2) and
  cell (i, j) spans [i - 0.7, i + 0.3] x [j - 0.7, j + 0.3]; action[0] pushes along x, action[1] along y;
- a fixed evaluation goal at D4RL's target: the position (i, j) of the layout's 'G' cell (D4RL's maze strings);
- reward sparse 1.0 within 0.5 of the goal (PointMaze uses 0.45), dense exp(-distance);
- reset to a uniformly drawn free cell (the goal's included), position noise U(-0.1, 0.1), velocity N(0, 0.1);
- no termination at the goal; `make` cuts episodes at 300 / 600 / 800 steps (umaze / medium / large).
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from functools import cached_property

import gymnasium
import numpy as np

from fluxrl.core.config import ConfigError

# D4RL's offset of the particle from its walls' grid (body at 1.2, wall of cell (i, j) at i + 1).
CELL_OFFSET = 0.2
# D4RL's sparse-reward radius around the goal.
GOAL_RADIUS = 0.5
REWARD_TYPES = ("sparse", "dense")


@dataclass(frozen=True)
class MazeLayout:
    """A maze as D4RL writes it: one string per row, '#' a wall, 'O' a free cell, 'G' the evaluation goal."""

    name: str
    rows: tuple[str, ...]
    episode_steps: int

    @cached_property
    def walls(self) -> np.ndarray:
        """[rows, columns] bool grid, True on walls (the planner's grid)."""
        return np.array([[tile == "#" for tile in row] for row in self.rows])

    @cached_property
    def free_cells(self) -> tuple[tuple[int, int], ...]:
        """Every cell that is not a wall, in row-major order."""
        return tuple((int(i), int(j)) for i, j in zip(*np.nonzero(~self.walls)))

    @cached_property
    def goal_cell(self) -> tuple[int, int]:
        """The cell of D4RL's evaluation goal."""
        (goal,) = [(i, j) for i, row in enumerate(self.rows) for j, tile in enumerate(row) if tile == "G"]
        return goal

    @property
    def goal(self) -> np.ndarray:
        """D4RL's evaluation target position: the goal cell's indices (0.2 off its centre, as in D4RL)."""
        return np.array(self.goal_cell, dtype=np.float64)


# D4RL's maze_model.py layouts (maze2d-*-v1 use U_MAZE, MEDIUM_MAZE and LARGE_MAZE, not the *_EVAL ones) and its
# registrations' episode lengths.
LAYOUTS = {
    "umaze": MazeLayout("umaze", ("#####",
                                  "#GOO#",
                                  "###O#",
                                  "#OOO#",
                                  "#####"), episode_steps=300),
    "medium": MazeLayout("medium", ("########",
                                    "#OO##OO#",
                                    "#OO#OOO#",
                                    "##OOO###",
                                    "#OO#OOO#",
                                    "#O#OO#O#",
                                    "#OOO#OG#",
                                    "########"), episode_steps=600),
    "large": MazeLayout("large", ("############",
                                  "#OOOO#OOOOO#",
                                  "#O##O#O#O#O#",
                                  "#OOOOOO#OOO#",
                                  "#O####O###O#",
                                  "#OO#O#OOOOO#",
                                  "##O#O#O#O###",
                                  "#OO#OOO#OGO#",
                                  "############"), episode_steps=800),
}

NAMES = tuple(f"maze2d-{maze}{suffix}" for maze in LAYOUTS for suffix in ("", "-dense"))


def parse_name(name: str) -> tuple[MazeLayout, str]:
    """The layout and reward type ('sparse' or 'dense') of a maze2d name; ConfigError listing the names."""
    if name not in NAMES:
        raise ConfigError(f"maze2d name must be one of {', '.join(NAMES)}, got {name!r}.")
    maze = name.removeprefix("maze2d-").removesuffix("-dense")
    return LAYOUTS[maze], "dense" if name.endswith("-dense") else "sparse"


def cell_center(cell) -> np.ndarray:
    """The position of a cell's centre in D4RL's coordinates."""
    return np.asarray(cell, dtype=np.float64) - CELL_OFFSET


def cell_of(position) -> tuple[int, int]:
    """The cell that holds a position (D4RL's coordinates)."""
    i, j = np.floor(np.asarray(position, dtype=np.float64)[:2] + 0.5 + CELL_OFFSET).astype(int)
    return int(i), int(j)


def goal_reward(positions, goal, reward_type: str) -> np.ndarray:
    """maze2d's reward at `positions` [..., 2]: sparse 1.0 within 0.5 of `goal` (inclusive, as D4RL), dense
    exp(-distance); float32 with the batch shape."""
    distance = np.linalg.norm(np.asarray(positions, dtype=np.float64)[..., :2] - np.asarray(goal), axis=-1)
    if reward_type == "sparse":
        return (distance <= GOAL_RADIUS).astype(np.float32)
    if reward_type == "dense":
        return np.exp(-distance).astype(np.float32)
    raise ConfigError(f"reward_type must be one of {', '.join(REWARD_TYPES)}, got {reward_type!r}.")


def _point_maze_class():
    # gymnasium_robotics prints a notice about its Adroit environments on import; it concerns nothing used here.
    with contextlib.redirect_stderr(io.StringIO()):
        from gymnasium_robotics.envs.maze.point_maze import PointMazeEnv
    return PointMazeEnv


class Maze2dEnv(gymnasium.Env):
    """D4RL's maze2d task on gymnasium-robotics' PointMaze simulation (no time limit; `make` adds it)."""

    metadata = {"render_modes": ["human", "rgb_array", "depth_array"]}

    def __init__(self, layout: MazeLayout, reward_type: str = "sparse", render_mode: str | None = None):
        if reward_type not in REWARD_TYPES:
            raise ConfigError(f"reward_type must be one of {', '.join(REWARD_TYPES)}, got {reward_type!r}.")
        self.layout = layout
        self.reward_type = reward_type
        self.goal = layout.goal
        self.render_mode = render_mode
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        maze_map = [[1 if wall else 0 for wall in row] for row in layout.walls]
        self._maze = _point_maze_class()(maze_map=maze_map, render_mode=render_mode, reward_type=reward_type,
                                         continuing_task=True, reset_target=False)
        # PointMaze writes its generated model to a temporary file and never removes it; it is loaded by now.
        with contextlib.suppress(OSError):
            os.remove(self._maze.tmp_xml_file_path)
        self._point = self._maze.point_env
        # PointMaze centres the maze on its origin with y pointing up the rows: D4RL x = row = offset_x - y,
        # D4RL y = column = x + offset_y.
        rows, columns = layout.walls.shape
        self._offset = np.array([rows / 2 - 0.5 - CELL_OFFSET, columns / 2 - 0.5 - CELL_OFFSET])
        self._maze.goal = self._to_point_position(self.goal)
        self._maze.update_target_site_pos()

    def _to_point_position(self, position) -> np.ndarray:
        return np.array([position[1] - self._offset[1], self._offset[0] - position[0]])

    def _observation(self) -> np.ndarray:
        (x, y), (vx, vy) = self._point.data.qpos, self._point.data.qvel
        return np.array([self._offset[0] - y, x + self._offset[1], -vy, vx], dtype=np.float32)

    def set_state(self, position, velocity=(0.0, 0.0)) -> np.ndarray:
        """Place the point at `position` with `velocity` (D4RL's coordinates); its observation."""
        self._point.set_state(self._to_point_position(position), np.array([velocity[1], -velocity[0]], float))
        return self._observation()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start at a uniformly drawn free cell (or `options['cell']`), D4RL's noise on position and velocity."""
        super().reset(seed=seed)
        self._point.reset(seed=seed)
        if options and options.get("cell") is not None:
            cell = tuple(options["cell"])
            if cell not in self.layout.free_cells:
                raise ConfigError(f"cell must be a free cell of the {self.layout.name} maze, got {cell}.")
        else:
            cell = self.layout.free_cells[self.np_random.integers(len(self.layout.free_cells))]
        position = np.asarray(cell, dtype=np.float64) + self.np_random.uniform(-0.1, 0.1, size=2)
        observation = self.set_state(position, self.np_random.normal(0.0, 0.1, size=2))
        return observation, {"success": self._success(observation)}

    def step(self, action):
        """Push the point with `action` in [-1, 1]^2 for one 0.01 s step; reward from the fixed goal, no end."""
        action = np.asarray(action, dtype=np.float64)
        # PointMaze clips to [-1, 1] itself; its axes are D4RL's (column, -row).
        self._point.step(np.array([action[1], -action[0]]))
        observation = self._observation()
        reward = float(goal_reward(observation[:2], self.goal, self.reward_type))
        return observation, reward, False, False, {"success": self._success(observation)}

    def _success(self, observation) -> bool:
        return bool(np.linalg.norm(observation[:2] - self.goal) <= GOAL_RADIUS)

    def render(self):
        """The PointMaze rendering (needs `render_mode`)."""
        return self._maze.render()

    def close(self):
        """Release the simulator."""
        self._maze.close()


def make(name: str, render_mode: str | None = None) -> gymnasium.Env:
    """The maze2d environment `name` (maze2d-{umaze,medium,large}[-dense]) with D4RL's episode length."""
    layout, reward_type = parse_name(name)
    return gymnasium.wrappers.TimeLimit(Maze2dEnv(layout, reward_type, render_mode), layout.episode_steps)
