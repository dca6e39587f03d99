"""The runner: shared data, seeds over cores, metric rows, resuming and extending, refusals, NaN detection."""

import csv
import dataclasses
import json
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fluxrl.core import runner
from fluxrl.core.config import ConfigError
from toy import TOY, ToyConfig, update

TIMINGS = {"iterations_per_second", "steps_per_second", "compile_seconds", "wall_seconds"}


@pytest.fixture
def run_config(tmp_path):
    """40 iterations of 3 seeds (padded to 4 over two devices), with marks that do not line up."""
    return runner.RunConfig(iterations=40, num_seeds=3, out=str(tmp_path / "run"), log_every=10, eval_every=7,
                            checkpoint_every=15, progress=False)


def _rows(path):
    with (path / "metrics.csv").open() as file:
        return list(csv.DictReader(file))


def _without_timings(summary):
    return {k: v for k, v in summary.items() if k not in TIMINGS}


def _csv_without_wall_clock(path):
    return [{k: v for k, v in row.items() if k != "wall_seconds"} for row in _rows(path)]


def _assert_same_state(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_a_seed_of_a_multi_seed_run_equals_that_seed_run_alone(run_config, tmp_path):
    assert len(jax.devices()) == 2, "the runner should ask for one CPU device per core"
    together = runner.run(TOY, ToyConfig(), run_config)
    for index in range(3):
        alone = runner.run(TOY, ToyConfig(), dataclasses.replace(
            run_config, seed=index, num_seeds=1, out=str(tmp_path / f"alone{index}")))
        _assert_same_state(runner.seed_state(together.state, index), runner.seed_state(alone.state, 0))


def test_each_row_averages_every_iteration_since_the_previous_row(run_config, tmp_path):
    runner.run(TOY, ToyConfig(), run_config)
    rows = [row for row in _rows(tmp_path / "run") if row["loss"] != ""]
    assert [int(r["iteration"]) for r in rows if r["seed"] == "0"] == [10, 20, 30, 40]
    # `step` is the iteration number, so a row over iterations 11..20 must average 15.5 even though the
    # evaluations at 14 and the checkpoint at 15 split those iterations into several chunks.
    assert [float(r["step"]) for r in rows if r["seed"] == "0"] == [5.5, 15.5, 25.5, 35.5]
    assert [float(r["updates"]) for r in rows if r["seed"] == "0"] == [10, 20, 30, 40]  # a counter: latest value

    keys = runner.seed_keys(run_config)
    state = TOY.init(ToyConfig(), TOY.make_data(ToyConfig()), keys[1])
    losses = []
    for _ in range(20):
        state, metrics = update(ToyConfig(), TOY.make_data(ToyConfig()), state)
        losses.append(float(metrics["loss"]))
    second_row = [r for r in rows if r["seed"] == "1"][1]
    assert float(second_row["loss"]) == pytest.approx(np.mean(losses[10:]), rel=1e-5)


def test_resumed_run_equals_uninterrupted_run(run_config, tmp_path):
    full = runner.run(TOY, ToyConfig(), run_config)

    def evaluate_then_die(config, data, state, key):
        if int(state.iteration) == 35:
            raise KeyboardInterrupt  # killed between the checkpoints at 30 and 40, mid-window of a row
        return TOY.evaluate_host(config, data, state, key)

    killed = dataclasses.replace(run_config, out=str(tmp_path / "killed"))
    with pytest.raises(KeyboardInterrupt):
        runner.run(TOY._replace(evaluate_host=evaluate_then_die), ToyConfig(), killed)
    resumed = runner.run(TOY, ToyConfig(), killed, resume=True)
    _assert_same_state(full.state, resumed.state)
    assert _without_timings(full.summary) == _without_timings(resumed.summary)
    assert _csv_without_wall_clock(tmp_path / "run") == _csv_without_wall_clock(tmp_path / "killed")


def test_resume_with_more_iterations_extends_the_run(run_config, tmp_path):
    full = runner.run(TOY, ToyConfig(), run_config)
    short = dataclasses.replace(run_config, iterations=20, out=str(tmp_path / "short"))
    runner.run(TOY, ToyConfig(), short)
    extended = runner.run(TOY, ToyConfig(), dataclasses.replace(short, iterations=40), resume=True)
    _assert_same_state(full.state, extended.state)
    assert json.loads((tmp_path / "short" / "config.json").read_text())["run"]["iterations"] == 40
    assert extended.summary["loss"] == full.summary["loss"]


def test_resume_with_a_config_that_does_not_match_the_checkpoint_is_one_clear_error(run_config, tmp_path):
    runner.run(TOY, ToyConfig(), dataclasses.replace(run_config, iterations=15))
    with pytest.raises(ConfigError, match="does not match") as error:
        runner.run(TOY, ToyConfig(dim=5), run_config, resume=True)
    assert "\n" not in str(error.value)


def test_the_same_run_twice_gives_identical_results(run_config, tmp_path):
    first = runner.run(TOY, ToyConfig(), run_config)
    second = runner.run(TOY, ToyConfig(), dataclasses.replace(run_config, out=str(tmp_path / "again")))
    assert _without_timings(first.summary) == _without_timings(second.summary)
    assert _csv_without_wall_clock(tmp_path / "run") == _csv_without_wall_clock(tmp_path / "again")


def test_a_directory_holding_a_run_is_refused_and_left_alone(run_config, tmp_path):
    runner.run(TOY, ToyConfig(), run_config)
    before = (tmp_path / "run" / "metrics.csv").read_text()
    with pytest.raises(ConfigError, match="already holds a run"):
        runner.run(TOY, ToyConfig(), run_config)
    assert (tmp_path / "run" / "metrics.csv").read_text() == before
    replaced = runner.run(TOY, ToyConfig(), dataclasses.replace(run_config, overwrite=True, iterations=10))
    assert replaced.summary["iterations"] == 10 and max(int(r["iteration"]) for r in _rows(tmp_path / "run")) == 10


def test_shared_data_is_an_argument_not_a_constant_and_stays_out_of_checkpoints(tmp_path):
    size = 50_000
    config = ToyConfig(dim=size)
    layout = runner.SeedLayout(2)
    programs = runner._Programs(TOY, config, layout)
    data = layout.share(TOY.make_data(config))
    state = programs.init(layout.place(runner.seed_keys(runner.RunConfig(num_seeds=2))), data)
    text = programs.chunk(3, state, data).as_text()
    assert f"f32[{size}]" in text and "constant({0, 1, 2" not in text
    runner.run(TOY, config, runner.RunConfig(iterations=2, num_seeds=2, out=str(tmp_path / "big"),
                                             progress=False))
    with np.load(tmp_path / "big" / "checkpoint.npz") as saved:
        leaves = [saved[name] for name in saved.files if name.startswith("leaf_")]
    # The weights [2, size] are state; the target [size] (data) is stored nowhere.
    assert sorted(leaf.shape for leaf in leaves) == sorted([(2, size), (2, 2), (2,)])


def test_a_nan_metric_stops_the_run_naming_metric_and_iteration(run_config):
    def update_with_nan(config, data, state):
        state, metrics = update(config, data, state)
        metrics["loss"] = jnp.where(state.iteration == 13, jnp.nan, metrics["loss"])
        return state, metrics

    with pytest.raises(runner.NonFiniteMetricError, match=r"'loss' became nan at iteration 13") as error:
        runner.run(TOY._replace(update=update_with_nan), ToyConfig(), run_config)
    assert "Resuming would repeat it" in str(error.value)


def test_summary_has_final_metrics_and_throughput_in_the_algorithms_unit(run_config, tmp_path):
    result = runner.run(TOY, ToyConfig(), run_config)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["distance"] == result.summary["distance"] and len(summary["per_seed"]["distance"]) == 3
    assert summary["first_weight"] == pytest.approx(np.mean([float(result.state.w[i, 0]) for i in range(3)]))
    # 2 steps per iteration and seed: the toy's unit of work.
    assert summary["steps_per_second"] == pytest.approx(summary["iterations_per_second"] * 2 * 3)


def test_evaluation_at_the_start_is_optional(run_config, tmp_path):
    runner.run(TOY, ToyConfig(), dataclasses.replace(run_config, eval_at_start=False))
    assert min(int(row["iteration"]) for row in _rows(tmp_path / "run")) == 7


def _tensorboard_scalars(path):
    """{tag: [(step, value)]} read back from a TFRecord event file."""
    from tensorboardX.proto import event_pb2

    scalars, data = {}, path.read_bytes()
    offset = 0
    while offset < len(data):
        (length,) = struct.unpack("<Q", data[offset:offset + 8])
        event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
        offset += 12 + length + 4
        for value in event.summary.value:
            scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def test_tensorboard_holds_the_across_seed_means_of_the_csv(run_config, tmp_path):
    runner.run(TOY, ToyConfig(), dataclasses.replace(run_config, tensorboard=True))
    (events,) = (tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*")
    scalars = _tensorboard_scalars(events)
    rows = [row for row in _rows(tmp_path / "run") if row["loss"] != ""]
    expected = [(int(rows[i]["iteration"]), np.mean([float(r["loss"]) for r in rows[i:i + 3]]))
                for i in range(0, len(rows), 3)]
    assert [step for step, _ in scalars["loss"]] == [step for step, _ in expected]
    np.testing.assert_allclose([v for _, v in scalars["loss"]], [v for _, v in expected], rtol=1e-6)


def test_the_map_and_vmap_seed_layouts_train_the_same_seeds_to_the_same_numbers(run_config, tmp_path):
    mapped = runner.run(TOY, ToyConfig(), dataclasses.replace(run_config, seed_layout="map"))
    batched = runner.run(TOY, ToyConfig(), dataclasses.replace(run_config, seed_layout="vmap",
                                                                out=str(tmp_path / "vmap")))
    for a, b in zip(jax.tree.leaves(mapped.state), jax.tree.leaves(batched.state)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)  # batched matmuls round apart
    assert runner.SeedLayout(2).seed_layout == "map"  # auto on CPU devices
    with pytest.raises(ConfigError, match="seed_layout"):
        runner.RunConfig(seed_layout="pmap")


@pytest.mark.slow
def test_wandb_logs_offline_and_a_resumed_run_continues_the_same_wandb_run(run_config, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    logged = dataclasses.replace(run_config, wandb=True, iterations=20)
    runner.run(TOY, ToyConfig(), logged)
    run_id = (tmp_path / "run" / "wandb" / "fluxrl-run-id").read_text()
    offline = list((tmp_path / "run" / "wandb").glob(f"offline-run-*-{run_id}"))
    assert len(offline) == 1 and any(offline[0].glob("*.wandb"))
    runner.run(TOY, ToyConfig(), dataclasses.replace(logged, iterations=40), resume=True)
    assert (tmp_path / "run" / "wandb" / "fluxrl-run-id").read_text() == run_id
