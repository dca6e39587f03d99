"""`fluxrl data make` for maze2d: planner, controller, determinism, atomic writing, reuse, the command."""

import os

import numpy as np
import pytest

from fluxrl.commands import data, parsing
from fluxrl.core.config import ConfigError
from fluxrl.envs.control import maze2d
from fluxrl.offline import datasets, generate

SMALL = 1200


def make_small(data_dir, seed=0, **options):
    return generate.make("maze2d-umaze", data_dir, size=SMALL, seed=seed, progress=False, **options)


def test_planner_routes_are_shortest_walks_through_free_cells():
    layout = maze2d.LAYOUTS["large"]
    planner = generate.GridPlanner(layout.walls)
    rng = np.random.default_rng(0)
    assert planner.route((3, 1), (1, 1), rng) == [(2, 1), (1, 1)]
    assert planner.route((1, 1), (1, 1), rng) == []
    umaze = generate.GridPlanner(maze2d.LAYOUTS["umaze"].walls)
    assert umaze.route((3, 1), (1, 1), rng) == [(3, 2), (3, 3), (2, 3), (1, 3), (1, 2), (1, 1)]
    for start in layout.free_cells:
        route = planner.route(start, layout.goal_cell, rng)
        steps = np.diff(np.array([start, *route]), axis=0)
        assert np.abs(steps).sum(axis=1).tolist() == [1] * len(route)
        assert not any(layout.walls[cell] for cell in route)
        assert len(route) == planner.distances_to(layout.goal_cell)[start]


def test_the_pd_controller_pushes_towards_the_waypoint_and_brakes():
    action = generate.pd_action(np.array([1.0, 1.0]), np.array([0.0, 2.0]), np.array([1.05, 1.0]))
    assert action.tolist() == pytest.approx([0.5, -1.0])


def test_the_controller_reaches_almost_every_target_on_umaze():
    dataset, record = generate.make_maze2d_dataset("maze2d-umaze", 6000, seed=0)
    assert record["targets_reached"] >= 50
    assert record["success_rate"] >= 0.95
    # The point visits every free cell of the maze.
    cells = {maze2d.cell_of(observation) for observation in dataset.observations}
    assert cells == set(maze2d.LAYOUTS["umaze"].free_cells)


def test_rewards_are_relabelled_to_the_goal_and_episodes_cut_every_300_steps():
    dataset, _ = generate.make_maze2d_dataset("maze2d-umaze-dense", SMALL, seed=2)
    goal = maze2d.LAYOUTS["umaze"].goal
    assert dataset.rewards == pytest.approx(np.exp(-np.linalg.norm(dataset.next_observations[:, :2] - goal, axis=1)))
    assert np.flatnonzero(dataset.timeouts).tolist() == list(range(299, SMALL, 300))
    assert not dataset.terminals.any()
    # The point never resets: each transition starts where the previous one ended.
    assert np.array_equal(dataset.observations[1:], dataset.next_observations[:-1])
    sparse, _ = generate.make_maze2d_dataset("maze2d-umaze", SMALL, seed=2)
    assert np.array_equal(sparse.observations, dataset.observations)
    assert sparse.rewards.sum() > 0 and set(np.unique(sparse.rewards)) == {0.0, 1.0}


def test_make_is_deterministic_given_seed_and_its_file_validates(tmp_path):
    first, second = make_small(tmp_path / "a", seed=1), make_small(tmp_path / "b", seed=1)
    other = make_small(tmp_path / "c", seed=2)
    (a, spec), (b, _), (c, _) = datasets.load(first), datasets.load(second), datasets.load(other)
    assert spec.name == "maze2d-umaze" and len(a.observations) == SMALL
    datasets.validate(a, datasets.spec_for("maze2d-umaze"))
    for key in datasets.Dataset._fields:
        assert np.array_equal(getattr(a, key), getattr(b, key)), key
    assert not np.array_equal(a.observations, c.observations)
    made = generate.info(first)
    assert made["seed"] == 1 and made["size"] == SMALL and made["success_rate"] >= 0.9


def _leftovers(directory):
    return sorted(path.name for path in directory.rglob("*")) if directory.exists() else []


def test_an_interrupted_make_leaves_no_file_behind(tmp_path, monkeypatch):
    step = maze2d.Maze2dEnv.step
    calls = []

    def interrupted_step(self, action):
        calls.append(1)
        if len(calls) == 500:
            raise KeyboardInterrupt
        return step(self, action)

    monkeypatch.setattr(maze2d.Maze2dEnv, "step", interrupted_step)
    with pytest.raises(KeyboardInterrupt):
        make_small(tmp_path)
    assert len(calls) == 500
    assert _leftovers(tmp_path) == []


def test_a_make_interrupted_while_writing_leaves_no_file_behind(tmp_path, monkeypatch):
    save = datasets.save

    def interrupted_save(dataset, path, spec):
        save(dataset, path, spec)
        raise KeyboardInterrupt  # after the bytes are written, before make renames them into place

    monkeypatch.setattr(datasets, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        make_small(tmp_path)
    assert _leftovers(tmp_path) == []


def test_a_second_make_reuses_the_file_and_overwrite_makes_it_again(tmp_path, monkeypatch):
    path = make_small(tmp_path, seed=3)
    modified = path.stat().st_mtime_ns

    def no_generation(*args, **kwargs):
        raise AssertionError("the dataset was made again")

    with monkeypatch.context() as patch:
        patch.setattr(generate, "make_maze2d_dataset", no_generation)
        assert make_small(tmp_path, seed=3) == path
    assert path.stat().st_mtime_ns == modified
    with pytest.raises(ConfigError, match="seed 3.*--overwrite"):
        make_small(tmp_path, seed=4)
    with pytest.raises(ConfigError, match=f"size {SMALL}, not seed 3 and the default size"):
        generate.make("maze2d-umaze", tmp_path, seed=3, progress=False)
    os.utime(path, ns=(0, 0))
    make_small(tmp_path, seed=4, overwrite=True)
    assert path.stat().st_mtime_ns != 0 and generate.info(path)["seed"] == 4
    assert _leftovers(tmp_path) == ["maze2d-umaze.hdf5"]


def test_data_make_checks_the_name_and_the_directory(tmp_path):
    with pytest.raises(ConfigError, match="maze2d-umaze, maze2d-medium"):
        data.check(data.DataMake(name="maze2d-huge", data_dir=str(tmp_path)))
    blocker = tmp_path / "file"
    blocker.write_text("")
    for data_dir in (blocker, blocker / "below"):
        with pytest.raises(ConfigError, match="--data-dir"):
            data.check(data.DataMake(name="maze2d-umaze", data_dir=str(data_dir)))
    data.check(data.DataMake(name="hopper-medium-replay", data_dir=str(tmp_path / "new" / "dir")))
    assert not (tmp_path / "new").exists()
    with pytest.raises(ConfigError, match="size"):
        parsing.parse(data.DataMake, ["maze2d-umaze", "--size", "0"], prog="fluxrl data make")


def test_data_make_prints_the_success_rate_and_where_the_file_is(tmp_path, capsys):
    command = parsing.parse(data.DataMake, ["maze2d-umaze", "--data-dir", str(tmp_path), "--size", str(SMALL)],
                            prog="fluxrl data make")
    data.check(command)
    assert data.execute(command) == 0
    out = capsys.readouterr().out
    assert "D4RL-style" in out and "the controller reached" in out
    assert f"written to {tmp_path / 'maze2d-umaze.hdf5'}" in out
    assert data.execute(command) == 0
    assert f"reusing {tmp_path / 'maze2d-umaze.hdf5'}" in capsys.readouterr().out
