"""Every core works: the seed axis is sharded over the host's devices, one CPU device per seed or per core.

XLA's CPU backend runs one program on one device mostly on one thread, and `vmap` over seeds turns each layer
into a batched matmul that it runs slowly. So the runner splits the seeds over CPU devices (`jax.shard_map`) and,
inside each device, runs its seeds one after another (`lax.map`): measured on a 2-core machine, 16 seeds of 30 steps
of a 2x256 MLP cost 143-180 ms vmapped on one device, 61 ms as `lax.map` on one device and 40-54 ms sharded over two.
When the seed count is known before JAX starts, the process gets one CPU device per seed where the cores do not
divide the seeds, so that no padding seed is computed (`devices_for`). An accelerator is the other way round: one
device runs a batched program at the cost of one seed's, so there the seeds on a device are vmapped (`SEED_LAYOUTS`,
chosen by the devices' platform unless the run says otherwise)."""

from __future__ import annotations

import os
from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

# The mesh axis the seeds are split over. It is not the seed axis name of `fluxrl.core.seeds`: a collective
# over the seeds inside an update must stay on one device, never synchronise the devices.
DEVICE_AXIS = "devices"
# How the seeds on one device run: one after another (map) or batched (vmap); auto picks by platform.
SEED_LAYOUTS = ("auto", "map", "vmap")


# XLA's CPU runtime aborts the process when one device waits more than 40 s for another at a synchronisation
# point; on a loaded machine (seen with several JAX processes sharing two cores) a device thread can be starved
# that long. Waiting is the right answer for a training run: a day, and no "stuck" warnings before 10 minutes.
PATIENT_XLA_FLAGS = {"xla_cpu_collective_call_terminate_timeout_seconds": 86400,
                     "xla_cpu_collective_call_warn_stuck_timeout_seconds": 600}


def _add_xla_flags(flags: dict[str, int]) -> None:
    """Append to XLA_FLAGS the flags it does not already set (read when JAX first runs a computation)."""
    current = os.environ.get("XLA_FLAGS", "")
    extra = [f"--{name}={value}" for name, value in flags.items() if name not in current]
    if extra:
        os.environ["XLA_FLAGS"] = " ".join([current, *extra]).strip()


def cpu_cores() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def devices_for(num_seeds: int, num_devices: int, cores: int) -> int:
    """How many of `num_devices` CPU devices `num_seeds` seeds use on `cores` cores: the fewest with the least
    estimated wall time, each device running ceil(seeds / devices) seeds and device threads sharing the cores."""
    def wall(devices: int) -> float:
        return -(-num_seeds // devices) * max(1.0, devices / cores)

    return min(range(1, max(1, min(num_devices, num_seeds)) + 1), key=lambda devices: (wall(devices), devices))


def use_every_core(num_seeds: int | None = None) -> int:
    """Ask JAX for one CPU device per core, or per seed where that runs `num_seeds` seeds sooner, if no JAX
    computation has run yet; returns the device count asked.

    Called when a run starts, never at import. The patient XLA flags are in XLA_FLAGS only while the backend starts
    and read them; the variable is then restored, so child processes (peer benchmarks, Ray workers) get the
    environment this process was started with."""
    previous = os.environ.get("XLA_FLAGS")
    _add_xla_flags(PATIENT_XLA_FLAGS)
    try:
        if jax.config.jax_num_cpu_devices != -1 or "xla_force_host_platform_device_count" in (previous or ""):
            count = jax.config.jax_num_cpu_devices  # the user chose
        else:
            # Device threads may outnumber the cores: 3 seeds on 3 devices sharing 2 cores train AWAC on
            # hopper-medium at 62.5 iterations/s against 48 on 2 devices (2 seeds each, one a padding copy); 5 seeds
            # 34.1 against 30.9. Never more devices than a run uses: idle ones slow the busy ones (2 seeds on 8
            # devices: 69 against 92 iterations/s). Measured 2026-12-08 on the 2-core machine.
            cores = cpu_cores()
            wanted = cores if num_seeds is None else max(cores, devices_for(num_seeds, max(num_seeds, cores), cores))
            try:
                jax.config.update("jax_num_cpu_devices", wanted)
                count = wanted
            except RuntimeError:  # JAX already ran something: keep the devices it has
                count = len(jax.devices())
        jax.devices()  # the backend starts here (if it has not) and reads XLA_FLAGS
        return count
    finally:
        if previous is None:
            os.environ.pop("XLA_FLAGS", None)
        else:
            os.environ["XLA_FLAGS"] = previous


class SeedLayout:
    """How `num_seeds` seeds sit on the devices: padded to a multiple of the device count, split evenly."""

    def __init__(self, num_seeds: int, devices: list | None = None, seed_layout: str = "auto"):
        devices = list(devices if devices is not None else jax.devices())
        self.num_seeds = num_seeds
        if seed_layout == "auto":
            seed_layout = "map" if devices[0].platform == "cpu" else "vmap"
        self.seed_layout = seed_layout
        if devices[0].platform == "cpu":
            self.num_devices = devices_for(num_seeds, len(devices), cpu_cores())
        else:
            self.num_devices = max(1, min(len(devices), num_seeds))
        # Padding seeds repeat real ones; their results are dropped.
        self.padded = -(-num_seeds // self.num_devices) * self.num_devices
        self.mesh = Mesh(np.array(devices[:self.num_devices]), (DEVICE_AXIS,))
        self.split = NamedSharding(self.mesh, PartitionSpec(DEVICE_AXIS))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())

    def pad(self, tree: Any) -> Any:
        """Leaves [num_seeds, ...] -> [padded, ...], extra rows copied from the first seeds."""
        if self.padded == self.num_seeds:
            return tree
        rows = np.arange(self.padded) % self.num_seeds
        return jax.tree.map(lambda x: np.asarray(x)[rows], tree)

    def unpad(self, tree: Any) -> Any:
        """Leaves [padded, ...] on the devices -> host arrays [num_seeds, ...]. Each device's part is copied on its
        own: slicing the split arrays would run one program with a collective on every device, which can wait
        forever for a device thread when devices outnumber the cores."""
        return jax.tree.map(lambda x: np.asarray(x)[:self.num_seeds], tree)

    def row(self, tree: Any, index: int) -> Any:
        """Seed `index` of seed-batched leaves split over the devices, read on the one device that holds it (for the
        reason `unpad` gives)."""
        def leaf(x):
            for shard in x.addressable_shards:
                start, stop, _ = shard.index[0].indices(x.shape[0])
                if start <= index < stop:
                    return shard.data[index - start]
            raise IndexError(f"seed {index} is on no device of this process")

        return jax.tree.map(leaf, tree)

    def place(self, tree: Any) -> Any:
        """Seed-batched leaves [num_seeds, ...] padded and split over the devices."""
        return jax.device_put(self.pad(tree), self.split)

    def keep_split(self, tree: Any) -> Any:
        """Padded seed-batched device arrays split over the devices again; a no-op for those already split.
        XLA may return an output that is the same for every seed (or empty) replicated, and a compiled program
        accepts only the shardings it was compiled for."""
        return jax.device_put(tree, self.split)

    def share(self, tree: Any) -> Any:
        """Leaves put whole on every device (read-only data shared by all seeds)."""
        return jax.device_put(tree, self.replicated)

    def per_seed(self, fn: Callable, num_seeded: int = 1, donate: bool = False) -> Callable:
        """A jitted program applying `fn(*seeded, shared)` to every seed: the first `num_seeded` arguments
        carry the seed axis (split over devices, seeds looped or vmapped on each), the last is shared by all. `donate`
        lets the program reuse the first argument's buffers (a state it replaces; the others are kept)."""
        def local(*args):
            seeded, shared = args[:num_seeded], args[num_seeded]
            if self.seed_layout == "vmap":
                return jax.vmap(lambda *xs: fn(*xs, shared))(*seeded)
            return jax.lax.map(lambda xs: fn(*xs, shared), seeded)

        specs = (PartitionSpec(DEVICE_AXIS),) * num_seeded + (PartitionSpec(),)
        # check_vma off: loops that start from constants and carry per-device values are fine here, since
        # nothing in `fn` communicates across devices.
        mapped = jax.shard_map(local, mesh=self.mesh, in_specs=specs, out_specs=PartitionSpec(DEVICE_AXIS),
                               check_vma=False)
        return jax.jit(mapped, donate_argnums=(0,) if donate else ())
