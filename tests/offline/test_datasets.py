"""Offline datasets: loading from .hdf5 / .npz / Minari, validation, atomic writes, scores and conventions."""

import dataclasses
import warnings

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxrl.core.config import ConfigError
from fluxrl.offline import datasets, preprocessing
from fluxrl.offline.datasets import SPECS, Dataset, DatasetError

MAZE = SPECS["maze2d-umaze"]


def synthetic_episodes(seed=0, lengths=(5, 3, 4), obs_dim=4, action_dim=2, end_with_terminal=(False, True, False)):
    """Episodes as Minari stores them: observations of length T+1, actions / rewards / flags of length T."""
    rng = np.random.default_rng(seed)
    episodes = []
    for length, terminal in zip(lengths, end_with_terminal):
        terminations = np.zeros(length, dtype=bool)
        truncations = np.zeros(length, dtype=bool)
        (terminations if terminal else truncations)[-1] = True
        episodes.append({"observations": rng.normal(size=(length + 1, obs_dim)).astype(np.float32),
                         "actions": rng.uniform(-1, 1, size=(length, action_dim)).astype(np.float32),
                         "rewards": rng.normal(size=length).astype(np.float32),
                         "terminations": terminations, "truncations": truncations})
    return episodes


def flatten(episodes):
    """The transitions of `episodes` as one Dataset."""
    def cat(key, part=slice(None)):
        return np.concatenate([episode[key][part] for episode in episodes]).astype(np.float32)

    return Dataset(observations=cat("observations", slice(None, -1)), actions=cat("actions"),
                   rewards=cat("rewards"), terminals=cat("terminations"), timeouts=cat("truncations"),
                   next_observations=cat("observations", slice(1, None)))


def assert_same(left: Dataset, right: Dataset):
    for key in Dataset._fields:
        np.testing.assert_array_equal(getattr(left, key), getattr(right, key), err_msg=key)
        assert getattr(left, key).dtype == np.float32, key


def write_minari(root, dataset_id, episodes, dict_observations):
    """A Minari dataset directory written by the minari package itself (offline, under `root`)."""
    import gymnasium
    import minari
    from minari.data_collector import EpisodeBuffer

    obs_dim = episodes[0]["observations"].shape[1]
    box = gymnasium.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
    if dict_observations:
        observation_space = gymnasium.spaces.Dict({"observation": box, "desired_goal": gymnasium.spaces.Box(
            -np.inf, np.inf, (2,), np.float32)})
    else:
        observation_space = box
    buffers = []
    for index, episode in enumerate(episodes):
        observations = episode["observations"]
        if dict_observations:
            observations = {"observation": observations,
                            "desired_goal": np.zeros((len(observations), 2), np.float32)}
        buffers.append(EpisodeBuffer(id=index, observations=observations, actions=episode["actions"],
                                     rewards=episode["rewards"], terminations=episode["terminations"],
                                     truncations=episode["truncations"]))
    action_space = gymnasium.spaces.Box(-1.0, 1.0, (episodes[0]["actions"].shape[1],), np.float32)
    with warnings.catch_warnings():
        # minari asks for an author, a description and an environment spec, which test data does not have.
        warnings.simplefilter("ignore", UserWarning)
        minari.create_dataset_from_buffers(dataset_id, buffers, observation_space=observation_space,
                                           action_space=action_space)
    return root / dataset_id


def test_dataset_error_is_a_one_line_config_error():
    with pytest.raises(ConfigError) as caught:
        datasets.load("maze2d-umaze", data_dir="no-such-directory")
    assert isinstance(caught.value, DatasetError)
    assert "\n" not in str(caught.value)
    assert "fluxrl data make maze2d-umaze" in str(caught.value)


def broken(dataset: Dataset, problem: str) -> Dataset:
    """`dataset` with one problem put in."""
    if problem == "nan":
        observations = dataset.observations.copy()
        observations[1, 2] = np.nan
        return dataset._replace(observations=observations)
    if problem == "inf":
        rewards = dataset.rewards.copy()
        rewards[0] = np.inf
        return dataset._replace(rewards=rewards)
    if problem == "action_bounds":
        actions = dataset.actions.copy()
        actions[3, 0] = 1.5
        return dataset._replace(actions=actions)
    if problem == "length":
        return dataset._replace(rewards=dataset.rewards[:-1])
    if problem == "rank":
        return dataset._replace(rewards=dataset.rewards[:, None])
    if problem == "dimension":
        return dataset._replace(observations=dataset.observations[:, :3])
    if problem == "flags":
        return dataset._replace(terminals=dataset.terminals + 0.5)
    if problem == "missing":
        return dataset._replace(actions=None)
    raise ValueError(problem)


PROBLEMS = {"nan": "NaN", "inf": "infinite", "action_bounds": "outside the bounds", "length": "different lengths",
            "rank": "rank", "dimension": "dimensions", "flags": "0 or 1", "missing": "no 'actions'"}


@pytest.mark.parametrize("problem", PROBLEMS)
def test_each_validation_problem_is_one_line_dataset_error(problem, tmp_path):
    dataset = broken(flatten(synthetic_episodes()), problem)
    with pytest.raises(DatasetError, match=PROBLEMS[problem]) as caught:
        datasets.validate(dataset, MAZE)
    assert "\n" not in str(caught.value)
    # Nothing is written when validation fails.
    with pytest.raises(DatasetError):
        datasets.save(dataset, tmp_path / "bad.hdf5", MAZE)
    assert list(tmp_path.iterdir()) == []


def test_validate_accepts_float_noise_at_the_action_bound():
    dataset = flatten(synthetic_episodes())
    actions = dataset.actions.copy()
    actions[0, 0] = 1.0 + 1e-6
    datasets.validate(dataset._replace(actions=actions), MAZE)


def test_missing_key_in_a_file_names_the_key_and_the_file(tmp_path):
    path = tmp_path / "maze2d-umaze-v1.hdf5"
    dataset = flatten(synthetic_episodes())
    with h5py.File(path, "w") as file:
        for key in ("observations", "actions", "terminals", "timeouts"):
            file.create_dataset(key, data=getattr(dataset, key))
    with pytest.raises(DatasetError, match="'rewards'") as caught:
        datasets.load(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("dict_observations", [False, True], ids=["box", "pointmaze_dict"])
def test_hdf5_npz_and_minari_directory_load_identical_arrays(dict_observations, tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    episodes = synthetic_episodes()
    expected = flatten(episodes)
    hdf5_path = datasets.save(expected, tmp_path / "a.hdf5", MAZE)
    npz_path = datasets.save_npz(expected, tmp_path / "b.npz", MAZE)
    minari_path = write_minari(tmp_path / "minari", "pointmaze/umaze-v0", episodes, dict_observations)

    loaded = {}
    for label, path in (("hdf5", hdf5_path), ("npz", npz_path), ("minari", minari_path),
                        ("minari data dir", minari_path / "data")):
        loaded[label] = datasets.load(path)
    for label, (dataset, spec) in loaded.items():
        assert spec == MAZE, label
        assert_same(dataset, expected)


def test_minari_episode_without_end_flag_is_marked_as_cut(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    episodes = synthetic_episodes(lengths=(4, 4), end_with_terminal=(False, False))
    episodes[0]["truncations"][:] = False
    dataset, _ = datasets.load(write_minari(tmp_path, "pointmaze/umaze-v0", episodes, False))
    np.testing.assert_array_equal(dataset.timeouts, [0, 0, 0, 1, 0, 0, 0, 1])
    np.testing.assert_allclose(preprocessing.episode_returns(dataset),
                               [episodes[0]["rewards"].sum(), episodes[1]["rewards"].sum()], rtol=1e-6)


def test_raw_d4rl_file_derives_next_observations_like_qlearning_dataset(tmp_path):
    # Two time-limited episodes of 3 rows, then a terminal episode of 2 rows, then 2 unfinished rows.
    observations = np.arange(10 * 4, dtype=np.float32).reshape(10, 4) / 40
    timeouts = np.array([0, 0, 1, 0, 0, 1, 0, 0, 0, 0], bool)
    terminals = np.array([0, 0, 0, 0, 0, 0, 0, 1, 0, 0], bool)
    path = tmp_path / "maze2d-umaze-v1.hdf5"
    with h5py.File(path, "w") as file:
        file["observations"] = observations
        file["actions"] = np.zeros((10, 2), np.float32)
        file["rewards"] = np.arange(10, dtype=np.float32)
        file["terminals"] = terminals
        file["timeouts"] = timeouts
    dataset, spec = datasets.load(path)
    kept = np.array([0, 1, 3, 4, 6, 7, 8])  # timeout rows 2 and 5 and the last row 9 are dropped
    assert spec == MAZE
    np.testing.assert_array_equal(dataset.observations, observations[kept])
    np.testing.assert_array_equal(dataset.next_observations, observations[kept + 1])
    np.testing.assert_array_equal(dataset.rewards, kept)
    np.testing.assert_array_equal(dataset.terminals, [0, 0, 0, 0, 0, 1, 0])
    # The rows before the dropped ones now end their (cut) episodes.
    np.testing.assert_array_equal(dataset.timeouts, [0, 1, 0, 1, 0, 0, 1])


@pytest.mark.parametrize("writer", ["save", "save_npz"])
def test_interrupted_save_leaves_no_file(writer, tmp_path, monkeypatch):
    dataset = flatten(synthetic_episodes())
    target = tmp_path / ("out.hdf5" if writer == "save" else "out.npz")
    calls = {"count": 0}

    def fail_half_way(original):
        def wrapped(*args, **kwargs):
            calls["count"] += 1
            if calls["count"] == 3:
                raise KeyboardInterrupt
            return original(*args, **kwargs)
        return wrapped

    if writer == "save":
        monkeypatch.setattr(h5py.Group, "create_dataset", fail_half_way(h5py.Group.create_dataset))
    else:
        # np.savez writes array by array through numpy's format writer.
        monkeypatch.setattr(np.lib.format, "write_array", fail_half_way(np.lib.format.write_array))
    with pytest.raises(KeyboardInterrupt):
        getattr(datasets, writer)(dataset, target, MAZE)
    assert calls["count"] == 3
    assert list(tmp_path.iterdir()) == []


def test_interrupted_overwrite_keeps_the_old_file(tmp_path, monkeypatch):
    old = flatten(synthetic_episodes(seed=1))
    path = datasets.save(old, tmp_path / "data.hdf5", MAZE)

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(h5py.Group, "create_dataset", fail)
    with pytest.raises(OSError):
        datasets.save(flatten(synthetic_episodes(seed=2)), path, MAZE)
    monkeypatch.undo()
    assert_same(datasets.load(path)[0], old)
    assert [entry.name for entry in tmp_path.iterdir()] == ["data.hdf5"]


@pytest.mark.parametrize("suffix", [".hdf5", ".npz"])
def test_truncated_file_gives_dataset_error_naming_the_file(suffix, tmp_path):
    dataset = flatten(synthetic_episodes(lengths=(300, 200, 100)))
    path = tmp_path / f"maze2d-umaze{suffix}"
    (datasets.save if suffix == ".hdf5" else datasets.save_npz)(dataset, path, MAZE)
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(DatasetError) as caught:
        datasets.load(path)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_normalized_score_is_0_and_100_at_the_reference_returns():
    for spec in SPECS.values():
        scores = datasets.normalized_score(spec, np.array([spec.ref_min_return, spec.ref_max_return]))
        np.testing.assert_allclose(scores, [0.0, 100.0], atol=1e-9)
    half = (MAZE.ref_min_return + MAZE.ref_max_return) / 2
    assert datasets.normalized_score(MAZE, half) == pytest.approx(50.0)


def test_specs_cover_every_d4rl_name_with_its_episode_length():
    for family in ("halfcheetah", "hopper", "walker2d"):
        for kind in ("random", "medium", "medium-replay", "medium-expert", "expert"):
            assert SPECS[f"{family}-{kind}"].max_episode_steps == 1000
    for size, steps in (("umaze", 300), ("medium", 600), ("large", 800)):
        sparse, dense = SPECS[f"maze2d-{size}"], SPECS[f"maze2d-{size}-dense"]
        assert sparse.max_episode_steps == dense.max_episode_steps == steps
        assert sparse.ref_max_return != dense.ref_max_return
    assert SPECS["hopper-medium"].env_id == "Hopper-v4"
    assert (SPECS["hopper-medium"].action_low, SPECS["hopper-medium"].action_high) == (-1.0, 1.0)


def test_spec_for_names_files_and_environments(tmp_path):
    assert datasets.spec_for("halfcheetah-medium-replay") == SPECS["halfcheetah-medium-replay"]
    assert datasets.spec_for("halfcheetah-medium-replay-v2.hdf5") == SPECS["halfcheetah-medium-replay"]
    assert datasets.spec_for(tmp_path / "maze2d-large-dense-v1.hdf5") == SPECS["maze2d-large-dense"]
    with pytest.raises(DatasetError, match="pass the environment"):
        datasets.spec_for(tmp_path / "my-data.hdf5")
    custom = datasets.spec_for(tmp_path / "my-data.hdf5", env="HalfCheetah-v5")
    assert (custom.name, custom.family, custom.env_id) == ("my-data", "halfcheetah", "HalfCheetah-v5")
    assert datasets.spec_for("x.npz", env="PointMaze_MediumDense-v3").family == "maze2d-medium-dense"
    assert datasets.spec_for("x.npz", env="hopper").env_id == "Hopper-v4"
    with pytest.raises(DatasetError, match="outside D4RL's families"):  # its spec needs the data: datasets.load
        datasets.spec_for("x.npz", env="CartPole-v1")


def test_our_files_remember_their_spec(tmp_path):
    spec = dataclasses.replace(SPECS["hopper-medium"], name="my-hopper")
    dataset = flatten(synthetic_episodes(obs_dim=11, action_dim=3))
    datasets.save(dataset, tmp_path / "anything.hdf5", spec)
    datasets.save_npz(dataset, tmp_path / "anything.npz", spec)
    assert datasets.spec_for(tmp_path / "anything.hdf5") == spec
    assert datasets.load(tmp_path / "anything.npz")[1] == spec


def test_bare_name_loads_from_the_data_dir(tmp_path, monkeypatch):
    dataset = flatten(synthetic_episodes())
    datasets.save(dataset, tmp_path / "maze2d-umaze.hdf5", MAZE)
    assert_same(datasets.load("maze2d-umaze-v1", data_dir=tmp_path)[0], dataset)
    monkeypatch.setenv("FLUXRL_DATA_DIR", str(tmp_path))
    assert_same(datasets.load("maze2d-umaze")[0], dataset)
    with pytest.raises(DatasetError, match="unknown dataset"):
        datasets.load("not-a-dataset")
    with pytest.raises(DatasetError, match="no dataset file"):
        datasets.load(tmp_path / "missing.npz")


def test_default_data_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FLUXRL_DATA_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert datasets.default_data_dir() == tmp_path / "explicit"
    monkeypatch.delenv("FLUXRL_DATA_DIR")
    assert datasets.default_data_dir() == tmp_path / "cache" / "fluxrl" / "datasets"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert datasets.default_data_dir() == tmp_path / "home" / ".cache" / "fluxrl" / "datasets"


def test_episode_returns_split_on_terminals_and_timeouts():
    dataset = Dataset(observations=np.zeros((6, 4), np.float32), actions=np.zeros((6, 2), np.float32),
                      rewards=np.array([1, 2, 3, 4, 5, 6], np.float32),
                      terminals=np.array([0, 1, 0, 0, 0, 0], np.float32),
                      timeouts=np.array([0, 0, 0, 1, 0, 0], np.float32),
                      next_observations=np.zeros((6, 4), np.float32))
    np.testing.assert_array_equal(preprocessing.episode_returns(dataset), [3, 7, 11])


def test_reward_transform_follows_corl_configs():
    episodes = synthetic_episodes(lengths=(6, 4, 5), obs_dim=11, action_dim=3)
    dataset = flatten(episodes)
    scaled = preprocessing.reward_transform(SPECS["hopper-medium"], dataset, "iql")
    returns = preprocessing.episode_returns(scaled)
    assert returns.max() - returns.min() == pytest.approx(1000.0, rel=1e-5)
    np.testing.assert_allclose(scaled.rewards / dataset.rewards, scaled.rewards[0] / dataset.rewards[0], rtol=1e-5)
    for algorithm in ("bc", "td3bc", "awac"):
        assert preprocessing.reward_transform(SPECS["hopper-medium"], dataset, algorithm) is dataset
    assert preprocessing.reward_transform(SPECS["hopper-expert"], dataset, "iql") is dataset
    maze = flatten(synthetic_episodes())
    assert preprocessing.reward_transform(MAZE, maze, "iql") is maze
    with pytest.raises(ConfigError, match="algorithm"):
        preprocessing.reward_transform(MAZE, maze, "sac")


def test_state_normalizer_gives_zero_mean_unit_scale():
    dataset = flatten(synthetic_episodes(lengths=(200, 200, 200)))
    dataset = dataset._replace(observations=dataset.observations * 5 + 3)
    mean, std = preprocessing.state_normalizer(dataset)
    normalized = preprocessing.normalize_dataset(dataset, mean, std)
    np.testing.assert_allclose(normalized.observations.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(normalized.observations.std(axis=0), 1.0, atol=1e-3)
    np.testing.assert_allclose(std - dataset.observations.std(axis=0), 1e-3, rtol=1e-3)


@st.composite
def small_datasets(draw):
    """A random valid dataset and a spec with matching dimensions."""
    rows = draw(st.integers(1, 12))
    obs_dim = draw(st.integers(1, 4))
    action_dim = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([1e-6, 1.0, 1e6]))
    dataset = Dataset(observations=(rng.normal(size=(rows, obs_dim)) * scale).astype(np.float32),
                      actions=rng.uniform(-1, 1, size=(rows, action_dim)).astype(np.float32),
                      rewards=(rng.normal(size=rows) * scale).astype(np.float32),
                      terminals=rng.integers(0, 2, rows).astype(np.float32),
                      timeouts=rng.integers(0, 2, rows).astype(np.float32),
                      next_observations=rng.normal(size=(rows, obs_dim)).astype(np.float32))
    spec = dataclasses.replace(MAZE, name="tiny", observation_dim=obs_dim, action_dim=action_dim)
    return dataset, spec


@settings(max_examples=20, deadline=None)
@given(case=small_datasets())
def test_load_of_save_is_identity(case, tmp_path_factory):
    dataset, spec = case
    directory = tmp_path_factory.mktemp("roundtrip")
    for path in (datasets.save(dataset, directory / "d.hdf5", spec),
                 datasets.save_npz(dataset, directory / "d.npz", spec)):
        loaded, loaded_spec = datasets.load(path)
        assert loaded_spec == spec
        assert_same(loaded, dataset)


def test_reward_scale_ignores_a_trailing_unfinished_episode():
    rewards = np.array([1, 1, 5, 5, 100], np.float32)  # episodes [2, 10] and an unfinished fragment of 100
    dataset = Dataset(observations=np.zeros((5, 11), np.float32), actions=np.zeros((5, 3), np.float32),
                      rewards=rewards, terminals=np.array([0, 1, 0, 1, 0], np.float32),
                      timeouts=np.zeros(5, np.float32), next_observations=np.zeros((5, 11), np.float32))
    scaled = preprocessing.reward_transform(SPECS["hopper-medium-replay"], dataset, "iql")
    np.testing.assert_allclose(scaled.rewards, rewards * 1000 / 8)
