"""FPO's multimodal grid world (McAllister et al. 2025) as a pure-JAX control environment.

Every rule follows the official PyTorch code, github.com/akanazawa/fpo, file gridworld/utils/gridworld.py
(cited below as `gridworld.py:LINE`):

- a 25 x 25 grid (gridworld.py:15); the agent's state is its cell (x, y), x the column, y the row (row 0 at the
  bottom, as the official plots draw it, gridworld.py:392);
- observation = (cell - 12) / 12 in [-1, 1]^2 (gridworld.py:42-51, 337-338);
- action: a float vector, clipped to [-1, 1]^2 and rounded half to even (numpy's `np.round`, so 0.5 -> 0 and
  0.51 -> 1) to a move in {-1, 0, 1}^2 (gridworld.py:341); the new cell is clipped to the grid (gridworld.py:343)
  and a move into a wall leaves the agent where it was (gridworld.py:344-345);
- reward: +20 on entering a goal cell, -10 on a death cell, 0 elsewhere (gridworld.py:16-17, 53-63, 350); entering
  either ends the episode (gridworld.py:351); every episode is cut at 100 steps (gridworld.py:261, 355);
- start: uniform over the cells that are neither goal nor death cells (gridworld.py:330-333).

Deliberate differences, each for the learner's sake:
- starts are never drawn inside a wall. The official reset builds a wall-free start mask (gridworld.py:301-328)
  and then overwrites its draw with one that ignores walls (gridworld.py:330-333), so in `two_slits` it can start
  inside the wall column; the other two layouts have no walls and are unaffected;
- `truncated` is false on a step that terminates: the official step can return both (gridworld.py:355), and its
  PPO treats them alike (models/ppo.py:292-293); here a goal or death at step 100 is a termination, nothing to
  bootstrap.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fluxrl.core.config import check_choice
from fluxrl.envs.control.base import Step

LAYOUTS = ("two_walls", "three_goals", "two_slits")
GRID_SIZE = 25  # gridworld.py:15
CENTER = GRID_SIZE // 2  # gridworld.py:42-47; also the observation's scale (gridworld.py:338)
GOAL_REWARD = 20.0  # gridworld.py:17
DEATH_REWARD = -10.0  # gridworld.py:16
MAX_STEPS = 100  # gridworld.py:261
MAX_GOALS = 3  # the most separate goal regions of any layout (three_goals)
# The fixed start cells of the paper's two_walls trajectory figure (eval_and_visualize_trajectories.py:55-61).
PAPER_START_POINTS = ((17, 12), (11, 13), (6, 9), (20, 17))


class GridWorldState(NamedTuple):
    """The agent's cell and the steps taken in this episode."""

    position: jax.Array  # int32 (x, y)
    steps: jax.Array  # int32


class GridWorldParams(NamedTuple):
    """A layout as arrays, every map indexed [x, y]; traced, so one compiled program serves every layout."""

    reward_map: jax.Array  # float32: GOAL_REWARD on goal cells, DEATH_REWARD on death cells, 0 elsewhere
    terminal_map: jax.Array  # bool: goal or death cells, where an episode ends
    wall_map: jax.Array  # bool: cells no move may enter
    goal_labels: jax.Array  # int32: which goal region a cell belongs to, -1 for non-goal cells
    start_probs: jax.Array  # float32: the reset distribution over cells, summing to 1
    max_steps: jax.Array  # int32: the episode's time limit


@lru_cache(maxsize=None)
def _layout_maps(layout: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(goal_labels int, death bool, wall bool) maps of a layout, indexed [x, y]."""
    check_choice("layout", layout, LAYOUTS)
    goal_labels = np.full((GRID_SIZE, GRID_SIZE), -1, np.int32)
    death = np.zeros((GRID_SIZE, GRID_SIZE), bool)
    walls = np.zeros((GRID_SIZE, GRID_SIZE), bool)
    if layout == "two_walls":
        # Goals fill the two bottom and the two top rows (gridworld.py:123-129); one goal region each.
        goal_labels[:, [0, 1]] = 0
        goal_labels[:, [GRID_SIZE - 2, GRID_SIZE - 1]] = 1
    elif layout == "three_goals":
        # 3 x 3 goal blocks (custom_goal_radius 3, gridworld.py:69) centred on (12, 18), (7, 7), (17, 7)
        # (gridworld.py:101-115); a 3 x 3 death block at the centre (gridworld.py:86-99).
        for label, (x, y) in enumerate(((12, 18), (7, 7), (17, 7))):
            goal_labels[x - 1:x + 2, y - 1:y + 2] = label
        death[CENTER - 1:CENTER + 2, CENTER - 1:CENTER + 2] = True
    else:
        # A wall on column 15 open at rows 4..7 and 17..20; the goal is the right-most column (gridworld.py:160-175).
        walls[CENTER + 3, :] = True
        walls[CENTER + 3, list(range(CENTER - 8, CENTER - 4)) + list(range(CENTER + 5, CENTER + 9))] = False
        goal_labels[GRID_SIZE - 1, :] = 0
    # Death takes precedence over a goal on the same cell (gridworld.py:59-62); no layout has such a cell.
    goal_labels[death] = -1
    return goal_labels, death, walls


def layout_params(layout: str, max_steps: int = MAX_STEPS) -> GridWorldParams:
    """The arrays of a named layout with the official start distribution and time limit."""
    goal_labels, death, walls = _layout_maps(layout)
    goal = goal_labels >= 0
    reward_map = np.where(goal, GOAL_REWARD, np.where(death, DEATH_REWARD, 0.0))
    start = ~goal & ~death & ~walls
    return GridWorldParams(
        reward_map=jnp.asarray(reward_map, jnp.float32), terminal_map=jnp.asarray(goal | death),
        wall_map=jnp.asarray(walls), goal_labels=jnp.asarray(goal_labels),
        start_probs=jnp.asarray(start / start.sum(), jnp.float32), max_steps=jnp.asarray(max_steps, jnp.int32))


def start_at(params: GridWorldParams, position) -> GridWorldParams:
    """Params whose every reset (the first and each automatic one) starts at `position` (x, y)."""
    x, y = position
    return params._replace(start_probs=jnp.zeros_like(params.start_probs).at[x, y].set(1.0))


def observe(position: jax.Array) -> jax.Array:
    """The observation of a cell: (cell - 12) / 12 in [-1, 1]^2 (gridworld.py:337-338)."""
    return ((position - CENTER) / CENTER).astype(jnp.float32)


def observation_position(observation: jax.Array) -> jax.Array:
    """The cell (x, y) an observation [..., 2] shows; the inverse of `observe`."""
    return jnp.round(observation * CENTER + CENTER).astype(jnp.int32)


def action_move(action: jax.Array) -> jax.Array:
    """The grid move in {-1, 0, 1}^2 of a continuous action: clipped, then rounded half to even (gridworld.py:341)."""
    return jnp.round(jnp.clip(action, -1.0, 1.0)).astype(jnp.int32)


def goal_index(params: GridWorldParams, position: jax.Array) -> jax.Array:
    """Which goal region a cell (x, y) [..., 2] is in, -1 when it is not a goal cell."""
    position = jnp.asarray(position)
    return params.goal_labels[position[..., 0], position[..., 1]]


def goals_reached(params: GridWorldParams, positions: jax.Array) -> jax.Array:
    """`goals_reached`: how many distinct goal regions the cells [..., 2] (rollouts' final cells) include."""
    labels = goal_index(params, positions).reshape(-1)
    return jnp.sum(jnp.any(labels[:, None] == jnp.arange(MAX_GOALS), axis=0))


@dataclass(frozen=True)
class GridWorld:
    """FPO's 25 x 25 grid world; the layout's name is static, its arrays are `default_params()`."""

    layout: str = "two_walls"  # the official default mode (gridworld.py:259)
    """One of LAYOUTS: 'two_walls', 'three_goals', 'two_slits'."""

    observation_size: ClassVar[int] = 2
    action_size: ClassVar[int] = 2

    def __post_init__(self):
        check_choice("layout", self.layout, LAYOUTS)

    def default_params(self) -> GridWorldParams:
        """The layout's arrays, the official start distribution and the 100-step limit."""
        return layout_params(self.layout)

    def reset(self, key: jax.Array, params: GridWorldParams) -> tuple[jax.Array, GridWorldState]:
        """A cell drawn from `params.start_probs`, at step 0."""
        flat = jax.random.choice(key, GRID_SIZE * GRID_SIZE, p=params.start_probs.reshape(-1))
        position = jnp.stack([flat // GRID_SIZE, flat % GRID_SIZE]).astype(jnp.int32)
        return observe(position), GridWorldState(position, jnp.zeros((), jnp.int32))

    def step(self, key: jax.Array, state: GridWorldState, action: jax.Array, params: GridWorldParams) -> Step:
        """One move; a goal or death cell terminates, step `max_steps` truncates, and either resets."""
        target = jnp.clip(state.position + action_move(action), 0, GRID_SIZE - 1)
        position = jnp.where(params.wall_map[target[0], target[1]], state.position, target)
        reward = params.reward_map[position[0], position[1]]
        terminated = params.terminal_map[position[0], position[1]]
        steps = state.steps + 1
        truncated = (steps >= params.max_steps) & ~terminated
        final_observation = observe(position)
        reset_observation, reset_state = self.reset(key, params)
        done = terminated | truncated
        next_state = jax.tree_util.tree_map(lambda fresh, old: jnp.where(done, fresh, old), reset_state,
                                            GridWorldState(position, steps))
        observation = jnp.where(done, reset_observation, final_observation)
        return Step(observation, next_state, reward, terminated, truncated, final_observation)

    def render(self, state: GridWorldState, params: GridWorldParams) -> np.ndarray:
        """The grid and the agent as an RGB image (for videos; host-side, not jittable)."""
        return render_cells(state, params)


# The official plot colours (gridworld.py:361-374), and the agent's for videos.
COLORS = {"free": (240, 240, 240), "death": (229, 57, 70), "goal": (42, 157, 143), "wall": (128, 128, 128),
          "agent": (38, 70, 83)}


def render_cells(state: GridWorldState, params: GridWorldParams, pixels: int = 12) -> np.ndarray:
    """The grid as an RGB image [25 p, 25 p, 3] (goals green, death cells red, walls grey, the agent dark blue),
    `pixels` per cell, row 0 at the bottom as the official plots draw it."""
    image = np.empty((GRID_SIZE, GRID_SIZE, 3), np.uint8)
    image[...] = COLORS["free"]
    reward_map = np.asarray(params.reward_map)
    for name, mask in (("goal", reward_map > 0), ("death", reward_map < 0), ("wall", np.asarray(params.wall_map))):
        image[mask.T] = COLORS[name]  # maps are [x, y]; images are [row, column] = [y, x]
    x, y = np.asarray(state.position)
    image[y, x] = COLORS["agent"]
    return np.repeat(np.repeat(image[::-1], pixels, axis=0), pixels, axis=1)


def _distances(passable: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Fewest moves from every cell to `sources` through `passable` cells (inf where unreachable).

    Moves are the env's: one step in each of x and y, walls and terminal cells not passable. They are symmetric,
    so a breadth-first search out of the sources gives the distance into them."""
    distance = np.full(passable.shape, np.inf)
    queue = deque(zip(*np.nonzero(sources)))
    for x, y in queue:
        distance[x, y] = 0
    while queue:
        x, y = queue.popleft()
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                nx, ny = x + dx, y + dy
                if 0 <= nx < GRID_SIZE and 0 <= ny < GRID_SIZE and passable[nx, ny] and distance[nx, ny] == np.inf:
                    distance[nx, ny] = distance[x, y] + 1
                    queue.append((nx, ny))
    return distance


@lru_cache(maxsize=None)
def _target_distances(layout: str) -> tuple[np.ndarray, np.ndarray]:
    """([targets, x, y] distances to each target region, [x, y] bool of the cells they are measured from)."""
    goal_labels, death, walls = _layout_maps(layout)
    free = (goal_labels < 0) & ~death & ~walls
    if layout == "two_slits":
        # One goal, two routes to it: the targets are the two openings of the wall, seen from its left side.
        column = CENTER + 3
        left = free.copy()
        left[column:, :] = False
        openings = np.zeros_like(walls)
        openings[column, :] = ~walls[column, :]
        regions = [openings & (np.arange(GRID_SIZE) < CENTER), openings & (np.arange(GRID_SIZE) > CENTER)]
        return np.stack([_distances(left | region, region) for region in regions]), left
    regions = [goal_labels == label for label in range(goal_labels.max() + 1)]
    return np.stack([_distances(free | region, region) for region in regions]), free


def saddle_states(layout: str) -> np.ndarray:
    """Cells [n, 2] (x, y) from which the two nearest goals (two_slits: the two openings) are equally near.

    The official code names no saddle states; the paper calls the mid-grid states of two_walls saddle points, and
    this generalises them: the free cells whose fewest-move distances to the nearest and the second nearest goal
    region are equal and finite. In two_walls that is the middle row y = 12 (11 moves to either goal); in
    two_slits, with a single goal, the regions are the two openings of the wall, measured left of the wall. Because
    a diagonal move costs one step, ties fill a wedge left of the two_slits wall and lines in three_goals (see
    docs/figures/gridworld_layouts.png)."""
    distances, cells = _target_distances(layout)
    nearest = np.sort(distances, axis=0)
    tie = cells & np.isfinite(nearest[1]) & (nearest[0] == nearest[1])
    return np.argwhere(tie).astype(np.int32)


def start_position(layout: str) -> np.ndarray:
    """The one start cell (x, y) whose rollouts `goals_reached` counts: a saddle state of the layout.

    two_walls: (17, 12), the paper figure's first start (eval_and_visualize_trajectories.py:57), on the middle row;
    three_goals: (12, 7), between the two lower goals, 4 moves from each; two_slits: (5, 12), on the wall's axis of
    symmetry, 10 moves from either opening. The latter two are our choice; the official code fixes none."""
    check_choice("layout", layout, LAYOUTS)
    return np.array({"two_walls": (17, 12), "three_goals": (12, 7), "two_slits": (5, 12)}[layout], np.int32)


def plot_layouts(path) -> None:
    """Write a figure with one panel per layout: walls, goals, death cells, start cell and saddle states."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg without pyplot's global backend
    from matplotlib.figure import Figure

    colors = COLORS
    figure = Figure(figsize=(4.2 * len(LAYOUTS), 4.9))
    FigureCanvasAgg(figure)
    for index, layout in enumerate(LAYOUTS):
        axes = figure.add_subplot(1, len(LAYOUTS), index + 1)
        goal_labels, death, walls = _layout_maps(layout)
        image = np.empty((GRID_SIZE, GRID_SIZE, 3), np.uint8)
        image[...] = colors["free"]
        for name, mask in (("goal", goal_labels >= 0), ("death", death), ("wall", walls)):
            image[mask.T] = colors[name]  # maps are [x, y]; images are [row, column] = [y, x]
        axes.imshow(image, origin="lower", extent=(0, GRID_SIZE, 0, GRID_SIZE), interpolation="none")
        for label in range(goal_labels.max() + 1):
            cells = np.argwhere(goal_labels == label)
            x, y = cells.mean(axis=0) + 0.5
            upright = np.ptp(cells[:, 1]) > np.ptp(cells[:, 0])  # a column of goal cells gets a vertical label
            axes.text(x, y, f"goal {label}", ha="center", va="center", fontsize=8, color="white", weight="bold",
                      rotation=90 if upright else 0)
        saddles = saddle_states(layout) + 0.5
        axes.scatter(saddles[:, 0], saddles[:, 1], s=6, color="#6a4c93", label="saddle states")
        start = start_position(layout) + 0.5
        axes.scatter([start[0]], [start[1]], s=120, marker="*", color="#f4a261", edgecolors="black", zorder=3,
                     label="start_position")
        axes.set_xticks(np.arange(0, GRID_SIZE + 1, 5))
        axes.set_yticks(np.arange(0, GRID_SIZE + 1, 5))
        axes.set_xticks(np.arange(GRID_SIZE + 1), minor=True)
        axes.set_yticks(np.arange(GRID_SIZE + 1), minor=True)
        axes.grid(which="minor", color="#ddd", linewidth=0.5)
        axes.set_title(layout)
        axes.set_xlabel("x")
        axes.set_ylabel("y")
    figure.legend(*axes.get_legend_handles_labels(), loc="lower center", ncol=2, frameon=False)
    figure.suptitle(f"FPO grid world: green goal (+{GOAL_REWARD:g}, ends), red death ({DEATH_REWARD:g}, ends), "
                    f"grey wall (blocks), {MAX_STEPS}-step episodes")
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    figure.savefig(path, dpi=110)
