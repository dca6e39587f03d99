"""The Ray executor against a real local Ray instance: the same results as the local executor."""

import sys
import time
import warnings

import pytest

import tiny
import toy
from fluxrl.core.runner import RunConfig
from fluxrl.sweep.driver import run_sweep
from fluxrl.sweep.executors import LocalExecutor, RayExecutor
from fluxrl.sweep.plan import Point, plan
from tiny import TINY, TinyConfig

ray = pytest.importorskip("ray")

RUN = RunConfig(iterations=10, num_seeds=2, log_every=5, eval_every=5, checkpoint_every=10, progress=False)


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance with two CPUs; workers unpickle the test's tiny algorithm (and the toy it builds on) by
    value."""
    began = time.perf_counter()
    with warnings.catch_warnings():  # JAX's warning at Ray's fork-and-exec of its processes
        warnings.filterwarnings("ignore", message="os.fork", category=RuntimeWarning)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    for module in (toy, tiny, sys.modules[__name__]):
        ray.cloudpickle.register_pickle_by_value(module)
    print(f"ray.init: {time.perf_counter() - began:.1f} s")
    yield
    for module in (toy, tiny, sys.modules[__name__]):
        ray.cloudpickle.unregister_pickle_by_value(module)
    ray.shutdown()


def _trials(out, explode_dim=None):
    """dim in {2, 3} (two trials) x lr in {0.1, 0.05} (each trial's axis)."""
    points = [Point({"dim": str(dim), "lr": str(lr)}, TINY, TinyConfig(dim=dim, lr=lr, explode=dim == explode_dim),
                    RUN) for dim in (2, 3) for lr in (0.1, 0.05)]
    return plan(points, out)


def _sweep(executor, out, explode_dim=None):
    return run_sweep(_trials(out, explode_dim), str(out), ["dim", "lr"], executor, {}, report=lambda _: None,
                     figures=False)


@pytest.mark.slow
def test_a_sweep_on_ray_gives_the_local_executors_metrics(local_ray, tmp_path):
    on_ray = _sweep(RayExecutor(cpus_per_task=2), tmp_path / "ray")  # one worker: one JAX start
    local = _sweep(LocalExecutor(), tmp_path / "local")
    assert not on_ray.failed and len(on_ray.rows) == len(local.rows) == 8
    for ray_row, local_row in zip(on_ray.rows, local.rows):
        assert ray_row.keys() == local_row.keys()
        for name, value in local_row.items():
            if isinstance(value, float):
                assert ray_row[name] == pytest.approx(value, rel=1e-6, abs=1e-6), name
            else:
                assert ray_row[name] == value


@pytest.mark.slow
def test_a_failing_trial_on_ray_is_reported_and_the_others_go_on(local_ray, tmp_path):
    result = _sweep(RayExecutor(), tmp_path, explode_dim=3)
    (failed,) = result.failed
    assert failed.name == "dim=3" and failed.attempts == 2 and "exploded on purpose" in failed.error
    assert {row["trial"] for row in result.rows} == {"dim=2"}


def _tiny_config(study, method):
    return TINY, TinyConfig(lr={"slow": 0.05, "fast": 0.1}[method])


@pytest.mark.slow
def test_a_reproductions_runs_on_ray_give_the_local_rows(local_ray, tmp_path):
    from fluxrl.experiments.common import Study, run_studies, using_executor

    study = Study(name="tiny", title="Tiny", config={}, methods=("slow", "fast"), iterations=10, eval_every=5,
                  curves=("distance",), headline="distance", lower_is_better=True)
    local = run_studies([study], tmp_path / "local", 2, False, _tiny_config)
    with using_executor(RayExecutor()):
        on_ray = run_studies([study], tmp_path / "ray", 2, False, _tiny_config)
    strip = lambda rows: [{k: v for k, v in row.items() if k != "wall_seconds"} for row in rows]
    for method in study.methods:
        assert strip(on_ray["tiny"][0][method]) == strip(local["tiny"][0][method])
