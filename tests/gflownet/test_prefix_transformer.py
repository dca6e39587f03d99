"""The GPT-2 style policy for sequences built left to right (parentheses): prefix-only reads, training, options."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fluxrl.core.config import ConfigError
from fluxrl.envs.gflownet.parentheses import Parentheses
from fluxrl.envs.gflownet.configs import HypergridConfig, ParenthesesConfig
from fluxrl.gflownet.balance import ALGORITHM, BalanceConfig
from fluxrl.gflownet.lggfn import LGGFNConfig
from fluxrl.gflownet.networks import TransformerConfig, build_policy
from fluxrl.gflownet.policy import PrefixTransformerPolicy, policy_input

ENV = Parentheses(max_tokens=6)


def test_a_states_outputs_are_the_causal_read_at_its_length_of_any_sequence_extending_it():
    policy = build_policy(TransformerConfig(d_model=16, heads=4, layers=2), ENV, jax.random.PRNGKey(0))
    assert isinstance(policy, PrefixTransformerPolicy)
    state = ENV.reset(ENV.default_params(), jax.random.PRNGKey(0))
    outputs = []
    for action in (0, 1, 0, 0, 1):
        outputs.append(policy(policy_input(policy, ENV, state)))
        state = ENV.step(state, jnp.int32(action))
    # one pass over the longest sequence, read at each prefix's length, gives each prefix's outputs
    ids = jnp.concatenate([jnp.array([ENV.vocab_size]), jnp.where(state.tokens >= 0, state.tokens, ENV.vocab_size + 1)])
    features = policy.encoder.features(ids)
    for length, (forward, backward, log_flow) in enumerate(outputs):
        head = features[length] @ policy.encoder.token_head.weight.T + policy.encoder.token_head.bias
        np.testing.assert_allclose(np.concatenate([forward, backward, [log_flow]]), head, rtol=1e-5, atol=1e-6)
    forward = np.stack([np.asarray(o[0]) for o in outputs])
    assert forward.shape == (5, ENV.num_actions) and np.isfinite(forward).all()
    assert not np.allclose(forward[0], forward[1])  # the empty prefix and "(" are told apart


@pytest.mark.slow
def test_tb_and_lggfn_train_parentheses_with_the_transformer():
    for explore in (None, LGGFNConfig()):
        algorithm = ALGORITHM
        config = BalanceConfig(env=ParenthesesConfig(max_tokens=4, unique_mode_samples=0), batch_size=4, loss="tb",
                               explore=explore, network=TransformerConfig(d_model=16, heads=4, layers=1))
        data = algorithm.make_data(config)
        state = algorithm.init(config, data, jax.random.PRNGKey(0))
        step = jax.jit(lambda s: algorithm.update(config, data, s))
        losses = []
        for _ in range(20):
            state, metrics = step(state)
            losses.append(float(metrics["loss"]))
        assert np.isfinite(losses).all() and np.mean(losses[-5:]) < np.mean(losses[:5]), explore


def test_the_transformer_is_refused_where_states_are_no_token_sequences():
    with pytest.raises(ConfigError, match="transformer reads token sequences"):
        BalanceConfig(env=HypergridConfig(ndim=2, height=8), network=TransformerConfig())
