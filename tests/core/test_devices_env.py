"""Importing fluxrl sets nothing in the environment, and a run leaves child processes the environment it had."""

import os
import subprocess
import sys


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
