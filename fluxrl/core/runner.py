"""The one training loop of fluxrl: chunks of `lax.scan(update)` for every seed, and everything between chunks.

Seeds are split over the CPU's cores (see `devices.py`); a read-only `data` input (a dataset, a test set, a mode
set) is shared by every seed as a program argument, never copied per seed nor stored in a checkpoint. Between
chunks, on the host, the runner writes metrics (CSV, optionally TensorBoard), moves the progress bar, evaluates,
checks every metric for NaN/inf, and checkpoints atomically. A killed run resumed from its last checkpoint ends
bit-for-bit where an uninterrupted run ends, because everything random lives in the state.

A run may also train a hyperparameter axis (`hyper.py`): values of traced config fields, trained next to the
seeds by the same program, each (member, seed) pair one run; each member logs into its own directory.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import numpy as np

from fluxrl.core import checkpoint, rundir
from fluxrl.core.config import ConfigError, check_choice, check_range, to_dict, to_typed
from fluxrl.core.devices import SEED_LAYOUTS, SeedLayout, use_every_core
from fluxrl.core.hyper import TRACING_ERRORS, HyperAxis, log_groups, run_values, with_values
from fluxrl.core.metric_window import MetricWindow, first_non_finite
from fluxrl.core.progress import Progress
from fluxrl.core.sinks import CSVSink, TensorBoardSink, WandbSink


@dataclass(frozen=True)
class RunConfig:
    """How long to train, how many seeds, where results go."""

    iterations: int = 2000
    """Training iterations per seed."""
    seed: int = 0
    """Seed of the first run; seed index i uses seed + i, so any one seed can be re-run alone."""
    num_seeds: int = 1
    """Independent seeds trained together in one process (split over the CPU cores)."""
    out: str = "runs/latest"
    """Run directory: config.json, metrics.csv, summary.json, checkpoint.npz."""
    log_every: int = 100
    """Iterations between metric rows (each row averages the iterations since the previous one)."""
    eval_every: int = 1000
    """Iterations between evaluations (also done at the end)."""
    eval_at_start: bool = True
    """Also evaluate before the first iteration."""
    checkpoint_every: int = 1000
    """Iterations between checkpoints (also one at the end)."""
    tensorboard: bool = False
    """Also write TensorBoard event files under OUT/tensorboard."""
    wandb: bool = False
    """Also log to Weights & Biases (files under OUT/wandb; offline unless WANDB_MODE or WANDB_API_KEY is set)."""
    wandb_project: str = "fluxrl"
    """The W&B project runs are logged to."""
    overwrite: bool = False
    """Replace a run already in --out."""
    progress: bool = True
    """Show a progress bar."""
    seed_layout: str = "auto"
    """How the seeds run on each device: map (one after another: fastest on CPU cores), vmap (batched: fastest on
    a GPU or TPU), or auto (map on CPU, vmap on accelerators). Seeds are split over the devices either way."""

    def __post_init__(self):
        check_choice("seed_layout", self.seed_layout, SEED_LAYOUTS)
        check_range("iterations", self.iterations, 1)
        check_range("num_seeds", self.num_seeds, 1)
        check_range("seed", self.seed, 0)
        for name in ("log_every", "eval_every", "checkpoint_every"):
            check_range(name, getattr(self, name), 1)


class Algorithm(NamedTuple):
    """What the runner needs of an algorithm module."""

    name: str  # stored in config.json
    config_type: type
    init: Callable  # (config, data, key) -> state of one seed
    update: Callable  # (config, data, state) -> (state, metrics of scalars); jittable
    make_data: Callable | None = None  # (config) -> read-only pytree shared by every seed
    # (config, the family's data, dataset_id, cache_dir, seed, progress) -> the run's data: pre-trains (or reads
    # from the cache) what the algorithm needs before its first update, e.g. an offline latent algorithm's decoder
    prepare_data: Callable | None = None
    evaluate: Callable | None = None  # (config, data, state, key) -> metrics of scalars; jittable, one seed
    evaluate_host: Callable | None = None  # (config, data, state, key) -> dict of floats; host-side, one seed
    progress_metrics: tuple[str, ...] = ()  # shown in the progress bar when logged
    counters: tuple[str, ...] = ()  # metrics logged at their latest value instead of averaged
    throughput_unit: str = "iterations"  # the algorithm's unit of work, e.g. "trajectories"
    work_per_iteration: Callable[[Any], int] = lambda config: 1  # units of work of one seed's iteration
    artifacts: tuple[str, ...] = ()  # the algorithm's own files in a run directory
    on_finish: Callable | None = None  # (config, data, state of the first seed, out) -> None; writes artifacts


class NonFiniteMetricError(RuntimeError):
    """A metric became NaN or infinite; the message names it, the iteration and the seed."""


class RunResult(NamedTuple):
    """The final state (leaves batched over seeds; with an axis over members, then seeds) and the summary written
    to summary.json (with an axis: each member's summary under "members")."""

    state: Any
    summary: dict


def seed_keys(run: RunConfig) -> np.ndarray:
    """One PRNG key per seed index: PRNGKey(seed + i)."""
    return np.stack([np.asarray(jax.random.PRNGKey(run.seed + i)) for i in range(run.num_seeds)])


def _marks(start: int, run: RunConfig) -> list[int]:
    marks = set()
    for every in (run.log_every, run.eval_every, run.checkpoint_every):
        marks.update(range(every, run.iterations, every))
    marks.add(run.iterations)
    return sorted(m for m in marks if m > start)


def seed_state(state: Any, index: int) -> Any:
    """The state of seed `index` of a seed-batched state (with an axis: of member `index`, all its seeds)."""
    return jax.tree.map(lambda x: x[index], state)


def member_state(state: Any, member: int, seed_index: int) -> Any:
    """The state of one seed of one member of a run with an axis (leaves [members, seeds, ...])."""
    return jax.tree.map(lambda x: x[member, seed_index], state)


class _Programs:
    """The compiled programs of a run: init, chunks of updates (one per length), jitted evaluation. Each run
    (a seed, or a member's seed) has its own key and its own values of the axis's fields ({} without one)."""

    def __init__(self, algorithm: Algorithm, config: Any, layout: SeedLayout, values: Any = None,
                 axis: HyperAxis | None = None):
        self.algorithm, self.config, self.layout, self.axis = algorithm, config, layout, axis
        self.values = layout.place(values or {})
        self.chunks: dict[int, Any] = {}
        self.compile_seconds = 0.0
        at = lambda values: with_values(config, values)
        init = layout.per_seed(lambda key, values, data: algorithm.init(at(values), data, key), num_seeded=2)
        self.init = lambda keys, shared: self.traced(lambda: init(keys, self.values, shared))
        self.evaluate = None
        if algorithm.evaluate is not None:
            evaluate = layout.per_seed(lambda state, key, values, data: algorithm.evaluate(at(values), data, state,
                                                                                          key), num_seeded=3)
            self.evaluate = lambda state, keys, shared: self.traced(lambda: evaluate(state, keys, self.values, shared))

    def traced(self, build: Callable) -> Any:
        """`build()`, with the tracing error of a field that cannot be an axis turned into a ConfigError."""
        try:
            return build()
        except TRACING_ERRORS:
            if self.axis is None:
                raise
            raise self.axis.traced_error(self.algorithm.name) from None

    def chunk(self, length: int, state: Any, shared: Any):
        """The program running `length` iterations of every run, called as (state, values, shared) (compiled
        once per length)."""
        if length not in self.chunks:
            update, config = self.algorithm.update, self.config
            scan = lambda s, values, data: jax.lax.scan(
                lambda carry, _: update(with_values(config, values), data, carry), s, None, length=length)
            began = time.perf_counter()
            self.chunks[length] = self.traced(lambda: self.layout.per_seed(scan, num_seeded=2, donate=True).lower(
                state, self.values, shared).compile())
            self.compile_seconds += time.perf_counter() - began
        return self.chunks[length]


def run(algorithm: Algorithm, config: Any, run_config: RunConfig, data: Any = None, resume: bool = False,
        axis: Mapping[str, Sequence[Any]] | None = None, command: Any = None) -> RunResult:
    """Train `algorithm` under `run_config`, writing everything into run_config.out; see the module docstring.

    With `resume`, continue the run in run_config.out from its last checkpoint up to run_config.iterations.
    `command` (a dataclass, e.g. the command line's) is stored in config.json so that the run can be rebuilt.
    With `axis` ({traced field path: one value per member}), every seed of every member trains in one program;
    member i logs into run_config.out/<its name> ("lr=0.001"); the checkpoint holds them all."""
    wall_start = time.perf_counter()
    hyper = HyperAxis(config, axis) if axis else None  # host-side checks only: JAX has not started yet
    # Devices and XLA options are set when a run starts, for this process only, sized by the runs trained together.
    use_every_core(run_config.num_seeds * (hyper.size if hyper else 1))
    out = Path(run_config.out)
    groups = log_groups(out, config, hyper)
    if resume:
        if not (out / checkpoint.CHECKPOINT_FILE).is_file():
            raise ConfigError(f"--resume {out} holds no checkpoint to resume from.")
    else:
        rundir.prepare_out_dir(str(out), run_config.overwrite)
    if data is None and algorithm.make_data is not None:
        data = algorithm.make_data(config)
    num_seeds = run_config.num_seeds
    seeds = [run_config.seed + i for i in range(num_seeds)]
    # Run r is seed r % num_seeds of member r // num_seeds: a member's seed i starts from seed i's key.
    keys = np.tile(seed_keys(run_config), (len(groups), 1))
    values = run_values(hyper, num_seeds)
    layout = SeedLayout(len(keys), seed_layout=run_config.seed_layout)
    shared = layout.share(data)
    programs = _Programs(algorithm, config, layout, values, hyper)
    window = MetricWindow(algorithm.counters)
    if resume:
        template = programs.traced(lambda: jax.eval_shape(jax.vmap(
            lambda key, v: algorithm.init(with_values(config, v), data, key)), keys, values))
        try:
            host_state, start, extras = checkpoint.load(out, template)
        except checkpoint.CheckpointMismatch as error:
            raise ConfigError(f"--resume {out}: the checkpoint does not match this run's config ({error}).") \
                from None
        if start > run_config.iterations:
            raise ConfigError(f"--iterations {run_config.iterations} is below the {start} iterations "
                              f"{out} has already trained.")
        window.restore(extras)
        state = layout.place(host_state)
    else:
        for group in groups:
            if run_config.overwrite and group.out.is_dir():
                rundir.clear_run(group.out, algorithm.artifacts)
            group.out.mkdir(parents=True, exist_ok=True)
        state, start = layout.keep_split(programs.init(layout.place(keys), shared)), 0
    # Written again on resume: an extended run records its new length.
    stored = {"algorithm": algorithm.name, "config": to_dict(config), "run": to_dict(run_config),
              "typed_config": to_typed(config), **({"command": to_typed(command)} if command is not None else {})}
    checkpoint.atomic_write_json(out / rundir.CONFIG_FILE, stored if hyper is None else
                                 {**stored, "axis": hyper.describe()})
    for group in groups if hyper else ():  # each member's directory says what it trained
        checkpoint.atomic_write_json(group.out / rundir.CONFIG_FILE, {**stored, "config": to_dict(group.config)})

    spans = [slice(index * num_seeds, (index + 1) * num_seeds) for index in range(len(groups))]  # rows of a group

    def check_finite(rows: dict[str, np.ndarray], first_iteration: int) -> None:
        for span, group in zip(spans, groups):
            problem = first_non_finite({name: values[span] for name, values in rows.items()}, first_iteration)
            if problem:
                raise NonFiniteMetricError(problem if group.name is None else f"member {group.name}: {problem}")

    def evaluate(state, iteration: int) -> list[dict[str, float]] | None:
        if algorithm.evaluate is None and algorithm.evaluate_host is None:
            return None
        eval_keys = np.stack([np.asarray(jax.random.fold_in(key, iteration)) for key in keys])
        results: list[dict[str, float]] = [{} for _ in keys]
        if programs.evaluate is not None:
            batched = layout.unpad(programs.evaluate(state, layout.place(eval_keys), shared))
            for i, result in enumerate(results):
                result.update({name: float(values[i]) for name, values in batched.items()})
        if algorithm.evaluate_host is not None:
            for i, result in enumerate(results):
                result.update(algorithm.evaluate_host(groups[i // num_seeds].config, data, layout.row(state, i),
                                                      eval_keys[i]))
        check_finite({k: np.array([[r[k]] for r in results]) for k in results[0]}, iteration)
        return results

    sinks = [CSVSink(group.out, rundir.logged_columns(group.out) if resume else []) for group in groups]
    for sink in sinks if resume else ():
        sink.truncate_after(start)
    tensorboards = [TensorBoardSink(group.out) for group in groups] if run_config.tensorboard else []
    if run_config.wandb:  # a resumed run continues its W&B run, whose id it stored
        tensorboards += [WandbSink.for_run(group.out, run_config.wandb_project, stored["config"], resume)
                         for group in groups]

    def log(iteration: int, train: dict[str, np.ndarray] | None, evals: list[dict] | None) -> dict[str, float]:
        elapsed = round(time.perf_counter() - wall_start, 3)
        rows = [{"iteration": iteration, "seed": seeds[i % num_seeds], "wall_seconds": elapsed}
                for i in range(len(keys))]
        for i, row in enumerate(rows):
            row.update({name: float(values[i]) for name, values in (train or {}).items()})
            row.update(evals[i] if evals else {})
        for span, sink in zip(spans, sinks):
            sink.write(rows[span])
        for span, tensorboard in zip(spans, tensorboards):
            tensorboard.write(iteration, _means(rows[span]))
        return _means(rows)

    latest: dict[str, float] = {}
    if start == 0 and run_config.eval_at_start:
        evals = evaluate(state, 0)
        if evals is not None:
            latest = log(0, None, evals)
    unit = algorithm.throughput_unit
    work = algorithm.work_per_iteration(config) * len(keys)
    progress = Progress(run_config.progress, run_config.iterations, start, algorithm.progress_metrics, unit)
    train_seconds, trained, iteration = 0.0, 0, start
    try:
        for mark in _marks(start, run_config):
            step = programs.chunk(mark - iteration, state, shared)
            began = time.perf_counter()
            state, chunk_metrics = step(state, programs.values, shared)
            state = layout.keep_split(state)
            chunk_metrics = layout.unpad(chunk_metrics)
            chunk_seconds = time.perf_counter() - began
            train_seconds += chunk_seconds
            trained += mark - iteration
            check_finite(chunk_metrics, iteration + 1)
            first, iteration = iteration, mark
            window.add(chunk_metrics)
            final = iteration == run_config.iterations
            evals = evaluate(state, iteration) if iteration % run_config.eval_every == 0 or final else None
            if iteration % run_config.log_every == 0 or final:
                latest.update(log(iteration, window.take(), evals))
            elif evals is not None:
                latest.update(log(iteration, None, evals))
            if iteration % run_config.checkpoint_every == 0 or final:
                checkpoint.save(out, layout.unpad(state), iteration, window.extras())
            progress.advance(iteration, (iteration - first) * work / max(chunk_seconds, 1e-9), latest)
    finally:
        progress.close()
        for tensorboard in tensorboards:
            tensorboard.close()

    state = layout.unpad(state)
    timings = {"iterations": run_config.iterations, "num_seeds": num_seeds,
               "iterations_per_second": trained / train_seconds if train_seconds else math.nan,
               "compile_seconds": programs.compile_seconds, "wall_seconds": time.perf_counter() - wall_start}
    if unit != "iterations":
        timings[f"{unit}_per_second"] = trained * work / train_seconds if train_seconds else math.nan
    summaries = {}
    for index, (group, sink) in enumerate(zip(groups, sinks)):
        summaries[group.name] = {**rundir.summarise(group.out, seeds, sink.columns[3:]), **timings}
        if algorithm.on_finish is not None:
            algorithm.on_finish(group.config, data, seed_state(state, index * num_seeds), group.out)
        if hyper is not None:
            checkpoint.atomic_write_json(group.out / rundir.SUMMARY_FILE, summaries[group.name])
    summary = summaries[None] if hyper is None else {"members": summaries, **timings}
    checkpoint.atomic_write_json(out / rundir.SUMMARY_FILE, summary)
    if hyper is not None:
        state = jax.tree.map(lambda x: x.reshape((len(groups), num_seeds) + x.shape[1:]), state)
    return RunResult(state, summary)


def _means(rows: list[dict]) -> dict[str, float]:
    """The across-row mean of every metric of metric rows."""
    return {name: float(np.mean([row[name] for row in rows])) for name in rows[0]
            if name not in ("iteration", "seed", "wall_seconds")}
