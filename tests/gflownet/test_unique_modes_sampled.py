"""`unique_modes_sampled`: distinct full-length balanced sequences among a trained policy's samples."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fluxrl.envs.gflownet.configs import ParenthesesConfig
from fluxrl.envs.gflownet.parentheses import Parentheses, catalan
from fluxrl.gflownet.evaluation import evaluate_policy, make_run_data, unique_modes_sampled
from fluxrl.gflownet.policy import MLPPolicy


def _fixed_policy(env, exit_logit):
    """An MLP policy whose forward logits are (0, 0, exit_logit) in every state: "(" and ")" equally likely."""
    policy = MLPPolicy(env, 8, 1, jax.random.PRNGKey(0))
    policy = jax.tree.map(lambda x: jnp.zeros_like(x) if isinstance(x, jax.Array) else x, policy)
    out_size = env.num_actions + env.num_backward_actions + 1
    leaves, treedef = jax.tree.flatten(policy)
    bias_at = max(i for i, leaf in enumerate(leaves) if getattr(leaf, "shape", None) == (out_size,))
    leaves[bias_at] = leaves[bias_at].at[env.exit_action].set(exit_logit)
    return jax.tree.unflatten(treedef, leaves)


def test_a_policy_that_never_exits_early_finds_both_full_modes_of_four_tokens():
    env = Parentheses(4)
    # A -1e4 exit logit (above the -1e9 of masked actions) stops every early exit, so all 16 full sequences
    # are equally likely and the two balanced ones, (()) and ()(), are both drawn (each missed with
    # probability (15/16)^2000).
    policy = _fixed_policy(env, -1e4)
    assert unique_modes_sampled(env, policy, env.default_params(), jax.random.PRNGKey(1), 2000) == 2


def test_short_balanced_sequences_are_not_paper_modes():
    env = Parentheses(4)
    # Exit forced as soon as it is allowed: every sample is one token long, so nothing fills the 4 slots.
    policy = _fixed_policy(env, 1e4)
    assert unique_modes_sampled(env, policy, env.default_params(), jax.random.PRNGKey(2), 500) == 0


def test_uniform_full_length_samples_find_the_expected_number_of_modes():
    env = Parentheses(32)
    policy = _fixed_policy(env, -1e4)
    num_samples = 16_000
    # Every sample is a uniform 32-token string; C_16 of the 2^32 are balanced, each a distinct mode.
    p = catalan(16) / 2.0**32
    expected = catalan(16) * (1 - (1 - p / catalan(16)) ** num_samples)  # E[distinct balanced]
    count = unique_modes_sampled(env, policy, env.default_params(), jax.random.PRNGKey(3), num_samples)
    assert abs(count - expected) < 5 * np.sqrt(expected), (count, expected)  # Poisson-like spread, 5 sigma


def test_evaluate_policy_reports_the_metric_with_the_configured_sample_count():
    config = ParenthesesConfig(max_tokens=4, unique_mode_samples=1000)
    env = config.build()[0]
    result = evaluate_policy(config, _fixed_policy(env, -1e4), make_run_data(config), jax.random.PRNGKey(4))
    assert result == {"unique_modes_sampled": 2.0}
    skipped = ParenthesesConfig(max_tokens=4, unique_mode_samples=0)
    assert evaluate_policy(skipped, _fixed_policy(env, -1e4), make_run_data(skipped), jax.random.PRNGKey(4)) == {}


def test_a_negative_sample_count_is_rejected_with_the_field_name():
    from fluxrl.core.config import ConfigError

    with pytest.raises(ConfigError, match="unique_mode_samples"):
        ParenthesesConfig(unique_mode_samples=-1)
