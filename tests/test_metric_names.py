"""Every metric a run reports has a definition in docs/metrics.md, under its exact name."""

import re
from pathlib import Path

import pytest

from fluxrl.core import runner
from fluxrl.gflownet.flat import from_flat

DOCS = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"
RUN_FIELDS = {"per_seed", "seeds"}


def _documented() -> set[str]:
    return set(re.findall(r"`([a-z_][a-z0-9_]*)`", DOCS.read_text()))


@pytest.mark.parametrize("options", [
    dict(),
    dict(explore="lggfn"),
    dict(explore="sagfn"),
    dict(loss="sdqn", per_capacity=64, replay_batch_size=16),
    dict(loss="mdqn", per_capacity=64, replay_batch_size=16),
    dict(env="structure", num_nodes=3),
], ids=["tb", "lggfn", "sagfn", "sdqn", "mdqn", "structure"])
def test_every_reported_metric_is_defined_in_the_docs(options, tmp_path):
    grid = {} if "env" in options else dict(env="hypergrid", ndim=2, height=4)
    algorithm, config = from_flat(**grid, hidden=16, batch_size=8, **options)
    summary = runner.run(algorithm, config, runner.RunConfig(iterations=4, out=str(tmp_path / "run"),
                                                             log_every=2, eval_every=2, progress=False)).summary
    undefined = sorted(set(summary) - RUN_FIELDS - _documented())
    assert not undefined, f"metrics reported but not defined in docs/metrics.md: {undefined}"
