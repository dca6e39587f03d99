"""Options that would do nothing are refused by the configs themselves, for Python users, experiments and sweeps."""

import pytest

from fluxrl.core.config import ConfigError
from fluxrl.gflownet.balance import BalanceConfig
from fluxrl.offline.cnf import CNFConfig
from fluxrl.offline.vae import VAEConfig


@pytest.mark.parametrize("changes", [dict(flow="paper"), dict(prior="normal"), dict(flow_epochs=3)])
def test_flow_options_are_refused_when_the_vae_decodes(changes):
    with pytest.raises(ConfigError, match="does nothing with decoder=vae"):
        CNFConfig(decoder="vae", **changes)
    CNFConfig(**changes)  # the same option with the flow decoder is taken


@pytest.mark.parametrize("changes", [dict(vae=VAEConfig(steps=10)), dict(vae_latent_scale=1.0)])
def test_vae_options_are_refused_when_the_flow_decodes(changes):
    with pytest.raises(ConfigError, match="does nothing with decoder=flow"):
        CNFConfig(**changes)
    CNFConfig(decoder="vae", **changes)


@pytest.mark.parametrize("loss", ["tb", "db"])
def test_subtb_lambda_is_refused_outside_subtb(loss):
    with pytest.raises(ConfigError, match=f"subtb_lambda does nothing with loss={loss}"):
        BalanceConfig(loss=loss, subtb_lambda=0.5)
    BalanceConfig(loss="subtb", subtb_lambda=0.5)
