"""Property tests of the balanced-parentheses environment."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxrl.core.config import ConfigError
from fluxrl.envs.gflownet.parentheses import Parentheses, ParenthesesState, catalan, parentheses_params

sizes = st.integers(2, 12)


def _state(env, text, terminated=False):
    """The state holding `text`, a string of "(" and ")"."""
    tokens = np.full(env.max_tokens, -1, np.int32)
    tokens[:len(text)] = ["()".index(c) for c in text]  # "(" -> 0, ")" -> 1
    return env.reset(env.default_params(), jax.random.PRNGKey(0))._replace(
        tokens=jnp.asarray(tokens), length=jnp.int32(len(text)), terminated=jnp.array(terminated))


def _balanced(text):
    height = 0
    for c in text:
        height += 1 if c == "(" else -1
        if height < 0:
            return False
    return height == 0 and len(text) > 0


def _texts(max_size):
    return st.text(alphabet="()", min_size=0, max_size=max_size)


@settings(max_examples=30, deadline=None)
@given(max_tokens=sizes, data=st.data())
def test_forward_mask_allows_exactly_the_valid_steps(max_tokens, data):
    env = Parentheses(max_tokens)
    text = data.draw(_texts(max_tokens))
    terminated = data.draw(st.booleans()) and len(text) > 0
    state = _state(env, text, terminated)
    mask = np.asarray(env.forward_mask(state))
    assert mask.shape == (env.num_actions,)
    room = len(text) < max_tokens and not terminated
    assert mask[0] == room and mask[1] == room
    assert mask[env.exit_action] == (len(text) > 0 and not terminated)
    for action in np.flatnonzero(mask[:env.exit_action]):
        child = env.step(state, jnp.int32(action))
        assert int(child.length) == len(text) + 1 and not bool(child.terminated)
        np.testing.assert_array_equal(child.tokens, _state(env, text + "()"[action]).tokens)
    if mask[env.exit_action]:
        exited = env.step(state, jnp.int32(env.exit_action))
        assert bool(env.is_terminal(exited)) and int(exited.length) == len(text)
        np.testing.assert_array_equal(exited.tokens, state.tokens)
        assert not np.asarray(env.forward_mask(exited)).any()


@settings(max_examples=30, deadline=None)
@given(max_tokens=sizes, data=st.data())
def test_backward_step_inverts_step(max_tokens, data):
    env = Parentheses(max_tokens)
    state = _state(env, data.draw(_texts(max_tokens - 1)))
    assert bool(env.backward_mask(state)[0]) == (int(state.length) > 0)
    for action in range(env.exit_action):
        child = env.step(state, jnp.int32(action))
        backward = env.backward_action(state, jnp.int32(action))
        assert int(backward) == 0
        assert np.asarray(env.backward_mask(child)).tolist() == [True]
        parent = env.backward_step(child, backward)
        np.testing.assert_array_equal(parent.tokens, state.tokens)
        assert int(parent.length) == int(state.length) and not bool(parent.terminated)


@settings(max_examples=30, deadline=None)
@given(max_tokens=sizes, seed=st.integers(0, 2**31 - 1))
def test_every_random_rollout_terminates_within_max_length(max_tokens, seed):
    env = Parentheses(max_tokens)
    state = env.reset(env.default_params(), jax.random.PRNGKey(0))
    rng = np.random.default_rng(seed)
    for _ in range(env.max_length):
        valid = np.flatnonzero(np.asarray(env.forward_mask(state)))
        state = env.step(state, jnp.int32(rng.choice(valid)))
        if bool(env.is_terminal(state)):
            break
    assert bool(env.is_terminal(state))
    assert 1 <= int(state.length) <= max_tokens
    assert not np.asarray(env.forward_mask(state)).any()


def test_the_longest_trajectory_has_max_length_transitions():
    env = Parentheses(6)
    state = env.reset(env.default_params(), jax.random.PRNGKey(0))
    for _ in range(env.max_tokens):
        state = env.step(state, jnp.int32(0))
    assert np.asarray(env.forward_mask(state)).tolist() == [False, False, True]
    assert bool(env.is_terminal(env.step(state, jnp.int32(env.exit_action))))
    assert env.max_length == env.max_tokens + 1


def test_empty_sequence_cannot_exit():
    env = Parentheses(4)
    state = env.reset(env.default_params(), jax.random.PRNGKey(0))
    assert np.asarray(env.forward_mask(state)).tolist() == [True, True, False]
    assert np.asarray(env.backward_mask(state)).tolist() == [False]


def test_log_reward_on_hand_cases_when_every_balanced_sequence_is_rewarded():
    env = Parentheses(32, rewarded="any")
    params = env.default_params()
    cases = {"(())": 0.0, "()": 0.0, "())(": -1.5, "(": -1.5, ")(": -1.5, "((((((((": -1.5,
             "(()(()))()": 0.0, "(()(())))(": -10.0, "((((((((()": -10.0, "()" * 16: 0.0, "(" * 32: -10.0}
    for text, expected in cases.items():
        state = _state(env, text, terminated=True)
        assert float(env.log_reward(params, state)) == pytest.approx(expected), text
    custom = parentheses_params(log_reward_balanced=1.0, log_reward_short=-2.0, log_reward_other=-3.0,
                                short_length=2)
    assert float(env.log_reward(custom, _state(env, "(())"))) == pytest.approx(1.0)
    assert float(env.log_reward(custom, _state(env, ")("))) == pytest.approx(-2.0)
    assert float(env.log_reward(custom, _state(env, "(()"))) == pytest.approx(-3.0)
    log_reward = jax.jit(env.log_reward)  # params traced, short_length included
    assert float(log_reward(params, _state(env, "())("))) == pytest.approx(-1.5)


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_log_reward_is_balanced_or_by_length(data):
    env = Parentheses(12, rewarded="any")
    params = env.default_params()
    text = data.draw(_texts(12).filter(bool))
    expected = 0.0 if _balanced(text) else (-1.5 if len(text) <= 8 else -10.0)
    assert float(env.log_reward(params, _state(env, text, True))) == pytest.approx(expected)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_official_reward_tops_only_balanced_sequences_that_fill_every_slot(data):
    env = Parentheses(12)  # rewarded="full", as src/envs/balanced_parentheses.py of the official code
    params = env.default_params()
    text = data.draw(_texts(12).filter(bool))
    full = _balanced(text) and len(text) == 12
    expected = 0.0 if full else (-1.5 if len(text) <= 8 else -10.0)
    assert float(env.log_reward(params, _state(env, text, True))) == pytest.approx(expected)
    assert bool(env.is_full_mode(_state(env, text, True))) == full


def test_rewarded_must_be_full_or_any():
    with pytest.raises(ConfigError, match="rewarded"):
        Parentheses(8, rewarded="short")


@pytest.mark.parametrize("max_tokens", [2, 3, 10, 12])
def test_mode_index_is_a_bijection_onto_the_balanced_sequences(max_tokens):
    env = Parentheses(max_tokens)
    params = env.default_params()
    texts = [text for length in range(1, max_tokens + 1)
             for text in map("".join, itertools.product("()", repeat=length))]
    balanced = [text for text in texts if _balanced(text)]
    assert env.num_modes == len(balanced) == sum(catalan(n) for n in range(1, max_tokens // 2 + 1))
    tokens = np.full((len(texts), max_tokens), -1, np.int32)
    for row, text in enumerate(texts):
        tokens[row, :len(text)] = ["()".index(c) for c in text]
    states = ParenthesesState(jnp.asarray(tokens), jnp.asarray([len(text) for text in texts], jnp.int32),
                              jnp.ones(len(texts), bool))
    indices = np.asarray(jax.jit(jax.vmap(env.mode_index, (None, 0)))(params, states))
    assert indices.dtype == np.int32
    is_balanced = np.array([_balanced(text) for text in texts])
    assert (indices[~is_balanced] == env.num_modes).all()
    np.testing.assert_array_equal(np.sort(indices[is_balanced]), np.arange(env.num_modes))
    # Ordered by length, then lexicographically with "(" before ")", as documented.
    order = sorted(balanced, key=lambda text: (len(text), text))
    ranked = [text for _, text in sorted(zip(indices[is_balanced], balanced))]
    assert ranked == order


def test_mode_index_at_32_tokens():
    env = Parentheses(32)
    params = env.default_params()
    assert env.num_modes == sum(catalan(n) for n in range(1, 17)) == 48_760_366
    assert catalan(16) == 35_357_670
    mode_index = jax.jit(env.mode_index)
    assert int(mode_index(params, _state(env, "()"))) == 0
    assert int(mode_index(params, _state(env, "(())"))) == 1
    assert int(mode_index(params, _state(env, "()()"))) == 2
    assert int(mode_index(params, _state(env, "(" * 16 + ")" * 16))) == env.num_modes - catalan(16)
    assert int(mode_index(params, _state(env, "()" * 16))) == env.num_modes - 1
    for text in ["(", ")(", "())(", "(" * 32, ")" * 32, "(()(())))(", "()" * 15 + ")("]:
        assert int(mode_index(params, _state(env, text))) == env.num_modes, text


def test_obs_is_a_one_hot_per_position_and_matches_its_hot_indices():
    env = Parentheses(6)
    state = _state(env, "(()")
    obs = np.asarray(env.obs(state))
    assert obs.shape == (env.obs_size,) and obs.dtype == np.float32
    expected = np.zeros((6, 3), np.float32)
    expected[[0, 1, 2, 3, 4, 5], [1, 1, 2, 0, 0, 0]] = 1.0
    np.testing.assert_array_equal(obs, expected.reshape(-1))
    np.testing.assert_array_equal(np.flatnonzero(obs), np.sort(np.asarray(env.obs_hot_indices(state))))


@pytest.mark.parametrize("max_tokens", [0, 1, -3, 2.0, 37])
def test_bad_sizes_are_rejected_with_the_field_name(max_tokens):
    with pytest.raises(ConfigError, match="max_tokens"):
        Parentheses(max_tokens)


def test_bad_reward_params_are_rejected_with_the_field_name():
    with pytest.raises(ConfigError, match="short_length"):
        parentheses_params(short_length=-1)
    with pytest.raises(ConfigError, match="log_reward_other"):
        parentheses_params(log_reward_other=float("nan"))


@settings(max_examples=60, deadline=None)
@given(max_tokens=sizes, data=st.data())
def test_a_paper_mode_is_exactly_a_balanced_sequence_filling_every_slot(max_tokens, data):
    env = Parentheses(max_tokens)
    # Half the draws fill every slot, so full-length balanced sequences are drawn often enough to matter.
    full = st.text(alphabet="()", min_size=max_tokens, max_size=max_tokens)
    text = data.draw(st.one_of(full, _texts(max_tokens).filter(bool)))
    state = _state(env, text, terminated=True)
    assert bool(env.is_full_mode(state)) == (_balanced(text) and len(text) == max_tokens)
    if bool(env.is_full_mode(state)):
        assert int(env.mode_index(env.default_params(), state)) < env.num_modes  # also one of fluxrl's modes
