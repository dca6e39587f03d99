"""Watch a trained policy: the frames of one episode, written as a GIF (or an MP4 where imageio's ffmpeg plugin is
installed), as `fluxrl evaluate RUN --video FILE` does.

Offline runs film the dataset's Gymnasium environment (`render_mode="rgb_array"`; MuJoCo tasks need an OpenGL
backend, e.g. `MUJOCO_GL=egl` on a machine without a display). On-policy runs film environments that define
`render(state, params)`, an RGB image [H, W, 3] uint8: the grid world, gymnax's Pendulum-v1 and
MountainCarContinuous-v0, MuJoCo Playground tasks, and a user's `ControlEnv` that defines it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import jax
import numpy as np

from fluxrl.core.config import ConfigError

SUFFIXES = (".gif", ".mp4")


def check_video_path(path: str | Path) -> Path:
    """`path` as a Path when fluxrl can write a video there; ConfigError naming the fix otherwise."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise ConfigError(f"--video must end in .gif or .mp4, got {path.name}.")
    if path.suffix == ".mp4" and not any(importlib.util.find_spec(name) for name in ("imageio_ffmpeg", "av")):
        raise ConfigError("writing .mp4 needs imageio's ffmpeg plugin (pip install imageio-ffmpeg); .gif works "
                          "without it.")
    return path


def record(trained: Any, path: str | Path, seed: int = 0, max_steps: int = 1000, fps: int = 30) -> tuple[Path, float]:
    """Film one episode of a trained policy (a `fluxrl.load` result) from seed `seed` into `path`; (path, the
    episode's return)."""
    path = check_video_path(path)
    if trained.family == "meta":
        raise ConfigError("Snake runs (meta-gradients) cannot be filmed yet; `fluxrl evaluate` without --video "
                          "plays their episodes.")
    episode = _offline_episode if trained.family == "offline" else _control_episode
    frames, total = episode(trained, seed, max_steps)
    write_frames(frames, path, fps)
    return path, total


def write_frames(frames: list[np.ndarray], path: Path, fps: int = 30) -> None:
    """Write RGB frames [H, W, 3] uint8 to a .gif or .mp4, atomically (nothing half-written on failure)."""
    import imageio.v3 as iio

    from fluxrl.core.checkpoint import atomic_file

    stack = np.stack([np.asarray(frame, np.uint8) for frame in frames])
    with atomic_file(path, suffix=path.suffix) as temporary:
        if path.suffix == ".gif":
            iio.imwrite(temporary, stack, duration=1000 / fps, loop=0)
        else:
            iio.imwrite(temporary, stack, fps=fps)


def _offline_episode(trained: Any, seed: int, max_steps: int) -> tuple[list[np.ndarray], float]:
    """Frames and return of one episode in the dataset's Gymnasium environment."""
    from fluxrl.offline.common import Evaluation

    evaluation = trained.data.evaluation
    if not isinstance(evaluation, Evaluation):
        raise ConfigError("this run trained without an environment (--env none); there is nothing to film.")
    env = evaluation.runner.make_env(render_mode="rgb_array")
    act = jax.jit(trained.act)
    key = jax.random.PRNGKey(seed)
    try:
        observation, _ = env.reset(seed=seed)
        frames, total = [_gymnasium_frame(env)], 0.0
        for _ in range(max_steps):
            key, act_key = jax.random.split(key)
            action = np.asarray(act(act_key, np.asarray(observation, np.float32)))
            observation, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            frames.append(_gymnasium_frame(env))
            if terminated or truncated:
                break
    finally:
        env.close()
    return frames, total


def _gymnasium_frame(env: Any) -> np.ndarray:
    """The environment's current RGB frame; ConfigError when it cannot render on this machine."""
    try:
        frame = env.render()
    except Exception as error:  # rendering back ends fail in many ways (no display, no OpenGL, no pygame)
        raise ConfigError(f"{env.spec.id if env.spec else 'the environment'} cannot render here ({error}); on a "
                          "machine without a display set MUJOCO_GL=egl (or osmesa) for MuJoCo tasks.") from None
    if frame is None:
        raise ConfigError("the environment rendered no frame.")
    return np.asarray(frame)


def _control_episode(trained: Any, seed: int, max_steps: int) -> tuple[list[np.ndarray], float]:
    """Frames and return of one episode of a control environment that defines render(state, params)."""
    from fluxrl.onpolicy.rollout import make_env

    env, params = make_env(trained.config.env), trained.data
    if not hasattr(env, "render"):
        raise ConfigError(f"{trained.config.env} does not render; a ControlEnv renders when it defines "
                          "render(state, params) returning an RGB image [H, W, 3].")
    reset, step, act = jax.jit(env.reset), jax.jit(env.step), jax.jit(trained.act)
    key, reset_key = jax.random.split(jax.random.PRNGKey(seed))
    observation, state = reset(reset_key, params)
    frames, total = [np.asarray(env.render(state, params))], 0.0
    for _ in range(max_steps):
        key, act_key, step_key = jax.random.split(key, 3)
        out = step(step_key, state, act(act_key, observation), params)
        total += float(out.reward)
        if bool(out.terminated | out.truncated):  # the state is already the next episode's (automatic reset)
            break
        observation, state = out.observation, out.state
        frames.append(np.asarray(env.render(state, params)))
    return frames, total
