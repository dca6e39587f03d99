"""Executors run tasks (a function and its arguments; here, one fluxrl run each): in this process one after
another, or as Ray tasks on a cluster. Both report every task's outcome, retry a failed task once unless its
error would repeat exactly (a config mistake, a NaN: everything random lives in the run's state), and with
`keep_going` let one task's failure stop none of the others.

Ray is an optional extra (`pip install 'fluxrl[ray]'`); it is imported here, when a Ray executor runs, and
nowhere else in fluxrl.
"""

from __future__ import annotations

import traceback
import warnings
from typing import Any, Callable, NamedTuple, Sequence

from fluxrl.core.config import ConfigError

RAY_INSTALL = "the ray executor needs Ray: pip install 'fluxrl[ray]' (or pip install ray)."
EXECUTORS = ("local", "ray")


class Task(NamedTuple):
    """`fn(*args)`, named for reports; on Ray, fn and args are pickled to a worker."""

    name: str
    fn: Callable
    args: tuple = ()


class Outcome(NamedTuple):
    """A task's result, or its error (one line) and traceback, after `attempts` tries."""

    name: str
    result: Any = None
    error: str | None = None
    details: str | None = None
    attempts: int = 1

    @property
    def ok(self) -> bool:
        """Whether the task returned."""
        return self.error is None


class TaskFailed(RuntimeError):
    """A task failed where every task is needed (keep_going=False on Ray); the message names it and its error."""


def _repeats(error: BaseException) -> bool:
    """Whether running the task again would fail the same way."""
    from fluxrl.core.runner import NonFiniteMetricError

    return isinstance(error, (ConfigError, NonFiniteMetricError))


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def attempt(fn: Callable, args: tuple) -> tuple[Any, str | None, str | None, bool]:
    """(result, error line, traceback, whether it would repeat) of one try of `fn(*args)`."""
    try:
        return fn(*args), None, None, False
    except Exception as error:  # reported, not raised: the other tasks go on
        return None, _one_line(error), traceback.format_exc(), _repeats(error)


class LocalExecutor:
    """Tasks one after another in this process."""

    remote = False

    def __init__(self, retries: int = 1):
        self.retries = retries

    def run(self, tasks: Sequence[Task], keep_going: bool = True,
            on_done: Callable[[Outcome], None] | None = None) -> list[Outcome]:
        """Every task's outcome, in order; without `keep_going` the first error is raised as it is."""
        outcomes = []
        for task in tasks:
            for tries in range(1, self.retries + 2):
                if not keep_going:
                    outcome = Outcome(task.name, task.fn(*task.args), attempts=tries)
                    break
                result, error, details, repeats = attempt(task.fn, task.args)
                outcome = Outcome(task.name, result, error, details, tries)
                if error is None or repeats:
                    break
            outcomes.append(outcome)
            if on_done is not None:
                on_done(outcome)
        return outcomes


def import_ray():
    """The ray module; ConfigError saying how to install it when it is missing."""
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_INSTALL) from None
    return ray


def _attempt_on_worker(fn: Callable, args: tuple, cpus: int):
    """One try on a Ray worker, with JAX given the worker's share of CPU cores as devices."""
    import jax

    try:
        jax.config.update("jax_num_cpu_devices", cpus)
    except RuntimeError:  # this worker already ran JAX: its devices stay as they are
        pass
    return attempt(fn, args)


class RayExecutor:
    """Tasks as Ray tasks: on the cluster at `address`, or on a local Ray instance using every core (None)."""

    remote = True

    def __init__(self, address: str | None = None, cpus_per_task: int = 1, retries: int = 1):
        self.address, self.cpus_per_task, self.retries = address, cpus_per_task, retries

    def run(self, tasks: Sequence[Task], keep_going: bool = True,
            on_done: Callable[[Outcome], None] | None = None) -> list[Outcome]:
        """Every task's outcome, in the tasks' order; without `keep_going`, TaskFailed on the first failure."""
        ray = import_ray()
        started = not ray.is_initialized()
        if started:
            local = {"include_dashboard": False} if self.address is None else {}
            with warnings.catch_warnings():
                # JAX warns at every fork once it has run; Ray's forks exec a new program at once, which is safe.
                warnings.filterwarnings("ignore", message="os.fork", category=RuntimeWarning)
                ray.init(address=self.address, **local)
        try:
            # Ray's own retries stay off: a crashed worker and a raised error are retried alike, once, below.
            remote = ray.remote(_attempt_on_worker).options(num_cpus=self.cpus_per_task, max_retries=0)
            submit = lambda task: remote.remote(task.fn, task.args, self.cpus_per_task)
            pending = {submit(task): (task, 1) for task in tasks}
            outcomes: dict[str, Outcome] = {}
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                task, tries = pending.pop(ref)
                try:
                    result, error, details, repeats = ray.get(ref)
                except ray.exceptions.RayError as failure:  # the worker died, or the task could not run
                    # Ray's message starts with where it happened; the last line says what happened.
                    last = next((line for line in reversed(str(failure).splitlines()) if line.strip()), "")
                    result, error, details, repeats = None, f"{type(failure).__name__}: {last.strip()}", \
                        str(failure), False
                if error is not None and not repeats and tries <= self.retries:
                    pending[submit(task)] = (task, tries + 1)
                    continue
                outcomes[task.name] = Outcome(task.name, result, error, details, tries)
                if on_done is not None:
                    on_done(outcomes[task.name])
                if error is not None and not keep_going:
                    for other in pending:
                        ray.cancel(other)
                    raise TaskFailed(f"{task.name} failed: {error}")
            return [outcomes[task.name] for task in tasks]
        finally:
            if started:
                ray.shutdown()


def make_executor(name: str, address: str | None = None, cpus_per_task: int = 1):
    """The executor called `name` (local or ray); ConfigError when Ray is asked for and missing."""
    if name not in EXECUTORS:
        raise ConfigError(f"executor must be one of {', '.join(EXECUTORS)}, got {name!r}.")
    if name == "local":
        return LocalExecutor()
    import_ray()
    return RayExecutor(address, cpus_per_task)
