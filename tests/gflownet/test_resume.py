"""A killed run resumed from its checkpoint ends where an uninterrupted run ends, whatever state the algorithm
keeps beside its policy: a trajectory replay buffer, an auxiliary GFlowNet, RND networks, a target network and
a prioritised replay buffer."""

import dataclasses

import jax
import numpy as np
import pytest

from fluxrl.core import runner
from fluxrl.gflownet.lggfn import LGGFNConfig
from fluxrl.gflownet.sagfn import SAGFNConfig
from fluxrl.gflownet.trajectory_replay import ReplayConfig
from gfn_configs import tiny


# All with -m slow, to keep the suite under five minutes: the runner's own resume tests (tests/core/test_runner.py)
# check a killed and resumed run by default; these add each kind of state an algorithm keeps beside its policy.
@pytest.mark.parametrize("name, options", [
    pytest.param("tb", dict(explore=ReplayConfig(capacity=16)), marks=pytest.mark.slow),
    pytest.param("tb", dict(explore=LGGFNConfig()), marks=pytest.mark.slow),
    pytest.param("tb", dict(explore=SAGFNConfig()), marks=pytest.mark.slow),
    ("mdqn", dict(per_capacity=64, replay_batch_size=16, target_every=3)),
], ids=["replay", "lggfn", "sagfn", "mdqn"])
def test_a_killed_and_resumed_run_equals_an_uninterrupted_one(name, options, tmp_path):
    algorithm, config = tiny(name, **options)
    # Every chunk is 2 iterations long: one compiled program serves all three runs.
    run_config = runner.RunConfig(iterations=8, num_seeds=2, out=str(tmp_path / "full"), log_every=2,
                                  eval_every=2, checkpoint_every=4, progress=False)
    full = runner.run(algorithm, config, run_config)

    def evaluate_then_die(config, data, state, key):
        if int(state.iteration) == 6:
            raise KeyboardInterrupt  # killed between the checkpoints at 4 and 8
        return algorithm.evaluate_host(config, data, state, key)

    killed = dataclasses.replace(run_config, out=str(tmp_path / "killed"))
    with pytest.raises(KeyboardInterrupt):
        runner.run(algorithm._replace(evaluate_host=evaluate_then_die), config, killed)
    resumed = runner.run(algorithm, config, killed, resume=True)
    for a, b in zip(jax.tree.leaves(full.state), jax.tree.leaves(resumed.state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert full.summary["loss"] == resumed.summary["loss"] and full.summary["tv"] == resumed.summary["tv"]
