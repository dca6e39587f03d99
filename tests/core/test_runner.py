"""The runner: resuming, determinism, seeds, NaN detection."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fluxrl.core import runner
from fluxrl.gflownet import trainer

TIMING_KEYS = {"iterations_per_second", "compile_seconds", "wall_seconds"}


def _metrics_without_timings(summary):
    return {k: v for k, v in summary.items() if k not in TIMING_KEYS}


def _csv_without_wall_clock(path):
    lines = (path / "metrics.csv").read_text().splitlines()
    return [",".join(field for i, field in enumerate(line.split(",")) if i != 2) for line in lines]


def test_resumed_run_equals_uninterrupted_run(tiny_config, tiny_run, tmp_path):
    full = runner.run(trainer.ALGORITHM, tiny_config, tiny_run)

    def evaluate_then_die(config, state, key):
        if int(state.iteration) == 30:
            raise KeyboardInterrupt  # the process is killed between the checkpoints at 20 and 40
        return trainer.evaluate(config, state, key)

    dying = trainer.ALGORITHM._replace(evaluate=evaluate_then_die)
    killed_run = dataclasses.replace(tiny_run, out=str(tmp_path / "killed"), eval_every=10)
    with pytest.raises(KeyboardInterrupt):
        runner.run(dying, tiny_config, killed_run)
    assert json.loads((tmp_path / "killed" / "config.json").read_text())["run"]["iterations"] == 40
    resumed = runner.run(trainer.ALGORITHM, tiny_config, killed_run, resume=True)

    for a, b in zip(jax.tree.leaves(full.state), jax.tree.leaves(resumed.state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert _metrics_without_timings(full.summary) == _metrics_without_timings(resumed.summary)


def test_same_command_twice_gives_identical_results(tiny_config, tiny_run, tmp_path):
    first = runner.run(trainer.ALGORITHM, tiny_config, tiny_run)
    second = runner.run(trainer.ALGORITHM, tiny_config, dataclasses.replace(tiny_run, out=str(tmp_path / "again")))
    assert _metrics_without_timings(first.summary) == _metrics_without_timings(second.summary)
    assert _csv_without_wall_clock(tmp_path / "run") == _csv_without_wall_clock(tmp_path / "again")


def test_seed_index_i_of_a_multi_seed_run_equals_a_single_run_with_seed_plus_i(tiny_config, tiny_run, tmp_path):
    together = runner.run(trainer.ALGORITHM, tiny_config, tiny_run)
    alone = runner.run(trainer.ALGORITHM, tiny_config,
                       dataclasses.replace(tiny_run, seed=1, num_seeds=1, out=str(tmp_path / "alone")))
    for a, b in zip(jax.tree.leaves(together.state), jax.tree.leaves(alone.state)):
        np.testing.assert_allclose(np.asarray(a)[1], np.asarray(b)[0], rtol=1e-5, atol=1e-6)


def test_a_nan_metric_stops_the_run_naming_metric_and_iteration(tiny_config, tiny_run):
    def update_with_nan(config, state):
        state, metrics = trainer.update(config, state)
        metrics["loss"] = jnp.where(state.iteration == 13, jnp.nan, metrics["loss"])
        return state, metrics

    broken = trainer.ALGORITHM._replace(update=update_with_nan)
    with pytest.raises(runner.NonFiniteMetricError, match=r"'loss' became nan at iteration 13"):
        runner.run(broken, tiny_config, tiny_run)


def test_run_writes_config_metrics_and_summary(tiny_config, tiny_run, tmp_path):
    result = runner.run(trainer.ALGORITHM, tiny_config, tiny_run)
    out = tmp_path / "run"
    assert json.loads((out / "config.json").read_text())["config"]["height"] == 5
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 5  # header, then iterations 0, 10, 20, 30, 40 for two seeds
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tv"] == result.summary["tv"] and 0 <= summary["tv"] <= 1
    assert len(summary["per_seed"]["tv"]) == 2 and summary["iterations_per_second"] > 0


def test_tensorboard_events_are_written_when_asked(tiny_config, tiny_run, tmp_path):
    runner.run(trainer.ALGORITHM, tiny_config, dataclasses.replace(tiny_run, tensorboard=True, iterations=20))
    events = list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0
