"""Importing fluxrl sets nothing in the environment, and a run leaves child processes the environment it had."""

import os
import subprocess
import sys

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from fluxrl.core.devices import devices_for


def test_import_and_run_leave_xla_flags_as_they_were(tmp_path):
    script = """
import os
before = os.environ.get("XLA_FLAGS")
import fluxrl.core.runner, fluxrl.onpolicy.ppo, fluxrl.gflownet.balance
assert os.environ.get("XLA_FLAGS") == before, ("import", os.environ.get("XLA_FLAGS"))
from fluxrl.core.devices import use_every_core
import jax
assert use_every_core() == len(jax.devices())
assert os.environ.get("XLA_FLAGS") == before, ("run", os.environ.get("XLA_FLAGS"))
print("ok", len(jax.devices()))
"""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.startswith("ok"), out.stderr[-2000:]


def test_three_seeds_get_three_devices_and_the_same_numbers_as_two_devices_with_a_padding_seed(tmp_path):
    script = """
import sys
import numpy as np
from fluxrl.cli import main
args = ["train", "gflownet", "--ndim", "2", "--height", "5", "--hidden", "16", "--iterations", "20", "--log-every",
        "10", "--eval-every", "10", "--num-seeds", "3", "--no-progress", "--out", sys.argv[1]]
assert main(args) == 0
import jax
from fluxrl.core.devices import SeedLayout
print("devices", len(jax.devices()), SeedLayout(3).padded)
"""
    outputs = {}
    for name, extra in (("sized", {}), ("two", {"JAX_NUM_CPU_DEVICES": "2"})):
        env = {**{k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}, **extra}
        out = subprocess.run([sys.executable, "-c", script, str(tmp_path / name)], env=env, capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        outputs[name] = out.stdout.split("devices")[-1].split()
    assert outputs == {"sized": ["3", "3"], "two": ["2", "4"]}  # two cores here; 3 seeds pad to 4 on 2 devices
    with np.load(tmp_path / "sized" / "checkpoint.npz") as a, np.load(tmp_path / "two" / "checkpoint.npz") as b:
        assert a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files)


@given(seeds=st.integers(1, 64), cores=st.integers(1, 32))
def test_the_chosen_device_count_never_pads_a_whole_device_and_is_no_slower_than_one_per_core(seeds, cores):
    chosen = devices_for(seeds, max(seeds, cores), cores)
    padded = -(-seeds // chosen) * chosen
    assert 1 <= chosen <= seeds and padded - seeds < chosen

    def wall(devices):
        return -(-seeds // devices) * max(1.0, devices / cores)

    assert wall(chosen) <= wall(min(seeds, cores))
    if seeds % cores == 0:
        assert chosen == cores  # nothing to pad: one device per core, no more threads than cores


def test_the_command_line_reads_the_seed_count_from_its_options_or_the_run_it_resumes(tmp_path):
    from fluxrl.commands import parse_command_line, seeds_of

    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text('{"algorithm": "x", "config": {}, "run": {"num_seeds": 5}}')
    (out / "checkpoint.npz").write_bytes(b"")
    assert seeds_of(parse_command_line(["train", "offline", "--resume", str(out)])) == 5
    assert seeds_of(parse_command_line(["train", "gflownet", "--resume", str(out)])) == 5
    assert seeds_of(parse_command_line(["train", "gflownet", "--num-seeds", "3", "--out", str(tmp_path / "a")])) == 3
    assert seeds_of(parse_command_line(["reproduce", "cnf", "--seeds", "7"])) == 7
    assert seeds_of(parse_command_line(["data", "make", "maze2d-umaze"])) is None
