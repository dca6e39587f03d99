"""`fluxrl evaluate RUN --video FILE` films one episode of a trained policy: the frames are the environment's own
drawing of each state the policy visits, and what cannot be filmed is refused before anything is written."""

import importlib.util

import imageio.v3 as iio
import jax
import numpy as np
import pytest

from fluxrl.cli import main
from fluxrl.commands.use import Evaluate
from fluxrl.core.config import ConfigError
from fluxrl.envs.control.gridworld import COLORS, GridWorld
from fluxrl.envs.control.gymnax_adapter import GymnaxEnv

SMALL = ["--num-envs", "4", "--num-steps", "8", "--epochs", "1", "--minibatches", "1", "--iterations", "2",
         "--eval-every", "2", "--actor-hidden", "16", "--critic-hidden", "16", "--no-progress"]


def agent_cells(frames, pixels=12):
    """(x, y) of the agent's cell in each frame of a grid-world video."""
    cells = []
    for frame in frames:
        rows, columns = np.nonzero(np.all(frame == COLORS["agent"], axis=-1))
        cells.append((columns.min() // pixels, 24 - rows.min() // pixels))
    return np.asarray(cells)


def test_the_grid_world_drawing_puts_the_agent_in_its_cell_with_row_zero_at_the_bottom():
    env = GridWorld("two_walls")
    params = env.default_params()
    _, state = env.reset(jax.random.PRNGKey(3), params)
    frame = env.render(state, params)
    assert frame.shape == (300, 300, 3) and frame.dtype == np.uint8
    np.testing.assert_array_equal(agent_cells([frame])[0], np.asarray(state.position))


def test_the_pendulum_drawing_follows_the_angle():
    env = GymnaxEnv("Pendulum-v1")
    params = env.default_params()
    _, state = env.reset(jax.random.PRNGKey(0), params)
    up, down = (np.asarray(env.render(state.replace(theta=np.float32(angle)), params)) for angle in (0.0, np.pi))
    rod = lambda frame: np.nonzero(np.all(frame == (204, 77, 77), axis=-1))[0].mean()  # mean row of the rod
    assert rod(up) < 100 < rod(down)  # rows grow downwards: upright is above the pivot


@pytest.mark.parametrize("name, message", [("episode.txt", "must end in .gif or .mp4"),
                                           ("episode.mp4", "imageio-ffmpeg")])
def test_a_video_that_cannot_be_written_is_refused_before_the_run_is_loaded(name, message, tmp_path):
    if name.endswith(".mp4") and any(importlib.util.find_spec(module) for module in ("imageio_ffmpeg", "av")):
        pytest.skip("an mp4 writer is installed here")
    with pytest.raises(ConfigError, match=message):
        Evaluate(run=str(tmp_path), video=str(tmp_path / name))


def train_and_film(tmp_path, algorithm, env, name):
    """A tiny `algorithm` run on `env`, then `fluxrl evaluate --video tmp_path/<name>.gif`; its exit status."""
    out = tmp_path / name
    assert main(["train", "onpolicy", algorithm, "--env", env, *SMALL, "--out", str(out)]) == 0
    return main(["evaluate", str(out), "--episodes", "1", "--video", str(tmp_path / f"{name}.gif")])


@pytest.mark.slow
def test_evaluate_films_one_grid_world_episode_the_policy_plays(tmp_path, capsys):
    assert train_and_film(tmp_path, "ppo", "gridworld-two-walls", "grid") == 0
    assert "filmed into" in capsys.readouterr().out
    frames = iio.imread(tmp_path / "grid.gif")
    # An episode lasts at most 100 steps; the GIF merges repeated frames (the agent standing still).
    assert frames.shape[1:] == (300, 300, 3) and 2 <= len(frames) <= 100
    steps = np.abs(np.diff(agent_cells(frames), axis=0))
    assert steps.max() <= 1  # the agent moves at most one cell per axis per step, as the grid world's rules say


@pytest.mark.slow
def test_evaluate_films_a_pendulum_episode_and_refuses_an_environment_that_cannot_draw(tmp_path, capsys):
    assert train_and_film(tmp_path, "fpo", "Pendulum-v1", "pendulum") == 0
    frames = iio.imread(tmp_path / "pendulum.gif")
    # At most the first state and the 199 before the 200-step time limit (the GIF merges repeated frames).
    assert 2 <= len(frames) <= 200 and all(np.all(frame == (204, 77, 77), axis=-1).any() for frame in frames)
    assert train_and_film(tmp_path, "ppo", "Reacher-misc", "reacher") == 2
    assert "no drawing for videos" in capsys.readouterr().err
    assert not list(tmp_path.glob("*reacher.gif*"))  # nothing half-written
