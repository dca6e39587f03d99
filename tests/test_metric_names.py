"""Every metric a run reports has a definition in docs/metrics.md, under its exact name."""

import dataclasses
import re
from pathlib import Path

import pytest

from fluxrl.core import runner
from fluxrl.envs.gflownet.configs import HypergridConfig, StructureConfig
from fluxrl.gflownet.lggfn import LGGFNConfig
from fluxrl.gflownet.sagfn import SAGFNConfig
from gfn_configs import tiny

DOCS = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"
RUN_FIELDS = {"per_seed", "seeds"}


def _documented() -> set[str]:
    return set(re.findall(r"`([a-z_][a-z0-9_]*)`", DOCS.read_text()))


@pytest.mark.parametrize("name, options", [
    ("tb", {}),
    ("tb", dict(explore=LGGFNConfig())),
    ("tb", dict(explore=SAGFNConfig())),
    pytest.param("sdqn", dict(per_capacity=64, replay_batch_size=16), marks=pytest.mark.slow),  # mdqn's metrics
    ("mdqn", dict(per_capacity=64, replay_batch_size=16)),
    ("tb", dict(env=StructureConfig(num_nodes=3))),
], ids=["tb", "lggfn", "sagfn", "sdqn", "mdqn", "structure"])
def test_every_reported_metric_is_defined_in_the_docs(name, options, tmp_path):
    options = {"env": HypergridConfig(ndim=2, height=4), **options}
    algorithm, config = tiny(name, **options)
    summary = runner.run(algorithm, config, runner.RunConfig(iterations=4, out=str(tmp_path / "run"),
                                                             log_every=2, eval_every=2, progress=False)).summary
    undefined = sorted(set(summary) - RUN_FIELDS - _documented())
    assert not undefined, f"metrics reported but not defined in docs/metrics.md: {undefined}"


@pytest.mark.parametrize("name", ["bc", "td3bc", "iql", "awac", "cnf", "plas"])
def test_every_offline_metric_is_defined_in_the_docs(name, tmp_path):
    import importlib

    import gymnasium

    from fluxrl.offline.common import Evaluation, make_offline_data
    from offline_toy import pendulum_shaped

    module = importlib.import_module(f"fluxrl.offline.{name}")
    dataset = pendulum_shaped()
    evaluation = Evaluation(lambda: gymnasium.make("Pendulum-v1", max_episode_steps=5), episodes=1,
                            normalized_score=lambda mean_return: mean_return)
    data = make_offline_data(dataset, max_action=2.0, evaluation=evaluation)
    config_type = module.ALGORITHM.config_type
    if name == "plas":
        from fluxrl.offline.vae import VAEConfig

        config = config_type(hidden=(16,), batch_size=8, vae=VAEConfig(hidden=16, steps=4, batch_size=8))
    elif name == "cnf":
        config = config_type(hidden=16, batch_size=8, flow_epochs=1)
    else:
        config = config_type(**{f.name: 16 for f in dataclasses.fields(config_type) if f.name == "hidden"},
                             batch_size=8)
    if module.ALGORITHM.prepare_data is not None:  # the decoder pre-trained on the toy data, cached in tmp
        data = module.ALGORITHM.prepare_data(config, data, "toy", tmp_path / "models")
    summary = runner.run(module.ALGORITHM, config, runner.RunConfig(iterations=4, out=str(tmp_path / "run"),
                                                                    log_every=2, eval_every=2, progress=False),
                         data=data).summary
    undefined = sorted(set(summary) - RUN_FIELDS - _documented())
    assert not undefined, f"metrics reported but not defined in docs/metrics.md: {undefined}"
    assert {"return", "normalized_score"} <= set(summary)


# FPO's metrics are PPO's but `entropy` (documented beside them) plus `cfm_loss`: one run covers both.
@pytest.mark.parametrize("name", ["fpo"])
def test_every_onpolicy_metric_is_defined_in_the_docs(name, tmp_path):
    from fluxrl.commands.train_onpolicy import algorithm_for
    from fluxrl.onpolicy.tuned import tuned_config

    # The grid world adds its saddle-state and start-cell evaluation to the training metrics.
    config = tuned_config(name, "gridworld-two-walls", num_envs=4, num_steps=8, epochs=1, minibatches=2,
                          actor_hidden=(8,), critic_hidden=(8,))
    summary = runner.run(algorithm_for(config), config, runner.RunConfig(iterations=2, out=str(tmp_path / "run"),
                                                                         log_every=1, eval_every=2,
                                                                         progress=False)).summary
    undefined = sorted(set(summary) - RUN_FIELDS - _documented())
    assert not undefined, f"metrics reported but not defined in docs/metrics.md: {undefined}"
    assert {"episode_return", "env_steps", "goals_reached", "saddle_split"} <= set(summary)
