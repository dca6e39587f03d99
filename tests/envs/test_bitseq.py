"""Bit sequences: masks, steps, rewards, modes, enumeration and the test set."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxrl.core.config import ConfigError
from fluxrl.envs.gflownet.bitseq import (
    MODE_BLOCKS, BitSequence, BitSequenceState, bits_to_words, bitseq_params, bitseq_test_set, generate_modes,
    words_to_bits)
from fluxrl.gflownet import metrics

SMALL = BitSequence(n=8, k=2, num_modes=2, mode_threshold=2)
SMALL_MODES = np.array([[0, 0, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0, 0, 0]], np.int8)
DEFAULT = BitSequence()
ENVS = pytest.mark.parametrize("env", [SMALL, DEFAULT], ids=["n8k2", "n120k8"])
PROPERTY = settings(max_examples=30, deadline=None)


PARAMS = {SMALL: bitseq_params(SMALL, modes=SMALL_MODES), DEFAULT: DEFAULT.default_params()}


def _params(env):
    return PARAMS[env]


@functools.lru_cache(maxsize=None)
def _jit(env, name):
    return jax.jit(getattr(env, name))


def _state(env, words):
    words = jnp.asarray(words, jnp.int32)
    return BitSequenceState(words, jnp.all(words >= 0, axis=-1))


def _states(env, min_empty=0):
    """Consistent states: any words, -1 for empty, terminated exactly when full."""
    slot = st.integers(-1, env.num_words - 1)
    words = st.lists(slot, min_size=env.num_slots, max_size=env.num_slots)
    return words.filter(lambda w: sum(x < 0 for x in w) >= min_empty).map(lambda w: _state(env, w))


def _hand_bits(words, k):
    return np.array([int(bit) for word in words for bit in format(int(word), f"0{k}b")], np.int8)


@pytest.mark.parametrize("fields, name", [
    (dict(n=10, k=3), "n"), (dict(n=4, k=8), "n"), (dict(k=0), "k"), (dict(n=34, k=17), "k"),
    (dict(num_modes=0), "num_modes"), (dict(mode_threshold=-1), "mode_threshold"), (dict(n=8.0), "n"),
])
def test_invalid_sizes_raise_a_config_error_naming_the_field(fields, name):
    with pytest.raises(ConfigError, match=f"^{name} "):
        BitSequence(**fields)


@ENVS
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_every_sequence_is_built_in_exactly_num_slots_steps_in_any_order_and_decodes_back(env, data):
    bits = np.array(data.draw(st.lists(st.integers(0, 1), min_size=env.n, max_size=env.n)), np.int8)
    order = data.draw(st.permutations(range(env.num_slots)))
    words = np.asarray(bits_to_words(bits, env.k))
    state = env.reset(_params(env), jax.random.PRNGKey(0))
    for steps, slot in enumerate(order, start=1):
        assert not bool(state.terminated)
        action = slot * env.num_words + int(words[slot])
        mask = np.asarray(_jit(env, "forward_mask")(state))
        assert mask.shape == (env.num_actions,) and mask[action]
        assert mask.sum() == (env.num_slots - steps + 1) * env.num_words  # every word for every empty slot
        backward = int(_jit(env, "backward_action")(state, action))
        state = _jit(env, "step")(state, action)
        assert np.asarray(_jit(env, "backward_mask")(state)).shape == (env.num_backward_actions,)
        assert bool(_jit(env, "backward_mask")(state)[backward])
    assert steps == env.max_length and bool(state.terminated)
    np.testing.assert_array_equal(words_to_bits(state.words, env.k), bits)
    assert np.asarray(env.obs(state)).shape == (env.obs_size,) and env.exit_action == -1


def test_reset_empties_every_slot():
    state = DEFAULT.reset(_params(DEFAULT), jax.random.PRNGKey(0))
    assert np.all(np.asarray(state.words) == -1) and not bool(state.terminated)
    assert np.all(np.asarray(DEFAULT.forward_mask(state)))
    assert not np.any(np.asarray(DEFAULT.backward_mask(state)))


def test_obs_is_the_word_or_num_words_for_an_empty_slot():
    obs = SMALL.obs(_state(SMALL, [3, -1, 0, -1]))
    np.testing.assert_array_equal(obs, [3, 4, 0, 4])
    assert obs.dtype == jnp.int32


@ENVS
@PROPERTY
@given(data=st.data())
def test_forward_mask_allows_exactly_the_actions_that_do_not_overwrite_a_filled_slot(env, data):
    state = data.draw(_states(env))
    action = data.draw(st.integers(0, env.num_actions - 1))
    slot, word = divmod(action, env.num_words)
    allowed = bool(_jit(env, "forward_mask")(state)[action])
    assert allowed == (int(state.words[slot]) < 0)
    assert not (allowed and bool(state.terminated))
    if allowed:
        child = _jit(env, "step")(state, action)
        expected = np.asarray(state.words).copy()
        expected[slot] = word
        np.testing.assert_array_equal(child.words, expected)
        assert bool(child.terminated) == bool(np.all(expected >= 0))


@ENVS
@PROPERTY
@given(data=st.data())
def test_backward_mask_marks_exactly_the_filled_slots(env, data):
    state = data.draw(_states(env))
    np.testing.assert_array_equal(_jit(env, "backward_mask")(state), np.asarray(state.words) >= 0)


@ENVS
@PROPERTY
@given(data=st.data())
def test_backward_step_undoes_step(env, data):
    state = data.draw(_states(env, min_empty=1))
    valid = np.flatnonzero(_jit(env, "forward_mask")(state))
    action = int(valid[data.draw(st.integers(0, len(valid) - 1))])
    child = _jit(env, "step")(state, action)
    backward = _jit(env, "backward_action")(state, action)
    assert bool(_jit(env, "backward_mask")(child)[backward])
    parent = _jit(env, "backward_step")(child, backward)
    np.testing.assert_array_equal(parent.words, state.words)
    assert not bool(parent.terminated)


@ENVS
@PROPERTY
@given(data=st.data())
def test_step_refills_what_backward_step_emptied(env, data):
    state = data.draw(_states(env).filter(lambda s: bool(jnp.any(s.words >= 0))))
    filled = np.flatnonzero(np.asarray(state.words) >= 0)
    slot = int(filled[data.draw(st.integers(0, len(filled) - 1))])
    parent = _jit(env, "backward_step")(state, slot)
    assert not bool(parent.terminated)
    restored = _jit(env, "step")(parent, slot * env.num_words + int(state.words[slot]))
    np.testing.assert_array_equal(restored.words, state.words)
    assert bool(restored.terminated) == bool(state.terminated)


@functools.lru_cache(maxsize=None)
def _rollout(env):
    """A uniformly random rollout of num_slots + 1 steps: (terminated after each step, final state)."""

    def rollout(key):
        def body(state, step_key):
            mask = env.forward_mask(state)
            action = jax.random.categorical(step_key, jnp.where(mask, 0.0, -jnp.inf))
            state = jax.tree.map(lambda new, old: jnp.where(jnp.any(mask), new, old), env.step(state, action), state)
            return state, (state.terminated, jnp.any(mask))

        start = env.reset(_params(env), key)
        final, (terminated, had_action) = jax.lax.scan(body, start, jax.random.split(key, env.num_slots + 1))
        return terminated, had_action, final

    return jax.jit(rollout)


@ENVS
@PROPERTY
@given(seed=st.integers(0, 2**31 - 1))
def test_every_random_rollout_terminates_after_exactly_num_slots_steps(env, seed):
    terminated, had_action, final = _rollout(env)(jax.random.PRNGKey(seed))
    expected = [False] * (env.num_slots - 1) + [True, True]
    np.testing.assert_array_equal(terminated, expected)
    np.testing.assert_array_equal(had_action, [True] * env.num_slots + [False])
    assert np.all(np.asarray(final.words) >= 0) and np.all(np.asarray(env.backward_mask(final)))


def test_words_are_written_most_significant_bit_first():
    np.testing.assert_array_equal(words_to_bits(jnp.array([2, 1, 3, 0]), 2), [1, 0, 0, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(words_to_bits(jnp.array([0b10110001]), 8), [1, 0, 1, 1, 0, 0, 0, 1])


@PROPERTY
@given(k=st.sampled_from((1, 3, 8, 16)), data=st.data())
def test_bits_to_words_inverts_words_to_bits(k, data):
    words = np.array(data.draw(st.lists(st.integers(0, 2**k - 1), min_size=5, max_size=5)))
    bits = words_to_bits(words, k)
    np.testing.assert_array_equal(bits, _hand_bits(words, k))
    np.testing.assert_array_equal(bits_to_words(bits, k), words)


@ENVS
def test_log_reward_is_zero_exactly_at_every_mode(env):
    params = _params(env)
    states = _state(env, bits_to_words(params.modes, env.k))
    log_rewards = jax.vmap(env.log_reward, (None, 0))(params, states)
    np.testing.assert_array_equal(log_rewards, np.zeros(env.num_modes))


def test_log_reward_is_minus_beta_times_the_distance_to_the_nearest_mode():
    # 11 10 00 01 is 4 bits from 00000000 and 2 bits from 11110000 (positions 3 and 7).
    params = bitseq_params(SMALL, beta=2.5, modes=SMALL_MODES)
    assert float(SMALL.log_reward(params, _state(SMALL, [3, 2, 0, 1]))) == -2.5 * 2


@ENVS
@PROPERTY
@given(data=st.data())
def test_log_reward_matches_a_hand_computed_hamming_distance(env, data):
    state = data.draw(_states(env).filter(lambda s: bool(s.terminated)) if env == SMALL else
                      st.lists(st.integers(0, env.num_words - 1), min_size=env.num_slots,
                               max_size=env.num_slots).map(lambda w: _state(env, w)))
    params = _params(env)
    distances = np.sum(_hand_bits(state.words, env.k)[None] != np.asarray(params.modes), axis=1)
    assert float(_jit(env, "log_reward")(params, state)) == pytest.approx(-params.beta * distances.min())
    np.testing.assert_array_equal(_jit(env, "mode_hits")(params, state), distances <= env.mode_threshold)


def test_a_mode_is_hit_within_the_threshold_inclusive():
    hits = SMALL.mode_hits(bitseq_params(SMALL, modes=SMALL_MODES), _state(SMALL, [3, 2, 0, 1]))
    np.testing.assert_array_equal(hits, [False, True])  # distances 4 and 2, threshold 2


def test_mode_generation_is_deterministic_per_seed():
    np.testing.assert_array_equal(BitSequence(mode_seed=3).default_params().modes, generate_modes(120, 60, 3))
    np.testing.assert_array_equal(generate_modes(120, 60, 3), generate_modes(120, 60, 3))
    assert not np.array_equal(generate_modes(120, 60, 3), generate_modes(120, 60, 4))


@PROPERTY
@given(num_blocks=st.integers(1, 15), num_modes=st.integers(1, 60), seed=st.integers(0, 1000))
def test_modes_are_distinct_and_made_of_the_five_blocks(num_blocks, num_modes, seed):
    num_modes = min(num_modes, 5**num_blocks)
    modes = generate_modes(8 * num_blocks, num_modes, seed)
    assert modes.shape == (num_modes, 8 * num_blocks) and modes.dtype == np.int8
    assert len({row.tobytes() for row in modes}) == num_modes
    blocks = {block.tobytes() for block in MODE_BLOCKS}
    assert all(block.tobytes() in blocks for block in modes.reshape(-1, 8))


def test_mode_generation_refuses_impossible_requests():
    with pytest.raises(ConfigError, match="^n must be a multiple of 8"):
        BitSequence(n=12, k=2).default_params()
    with pytest.raises(ConfigError, match="^num_modes must be <= 5"):
        generate_modes(8, 6, 0)


@pytest.mark.parametrize("modes, beta, name", [
    (np.zeros((3, 8)), 2.0, "modes"), (np.full((2, 8), 2), 2.0, "modes"), (SMALL_MODES, -1.0, "beta"),
])
def test_bad_reward_parameters_raise_a_config_error_naming_the_field(modes, beta, name):
    with pytest.raises(ConfigError, match=f"^{name} "):
        bitseq_params(SMALL, beta=beta, modes=modes)


@pytest.mark.parametrize("n, k", [(4, 2), (6, 2), (3, 1), (8, 4)])
def test_state_index_numbers_all_states_in_order(n, k):
    env = BitSequence(n=n, k=k, num_modes=1)
    states = env.all_states()
    assert states.words.shape == (env.num_states, env.num_slots)
    np.testing.assert_array_equal(env.state_index(states), np.arange(env.num_states))
    np.testing.assert_array_equal(states.terminated, np.all(np.asarray(states.words) >= 0, axis=1))
    assert int(np.sum(states.terminated)) == env.num_words**env.num_slots


@pytest.mark.parametrize("n, k", [(4, 2), (6, 2)])
def test_terminal_states_are_the_full_states_of_all_states(n, k):
    env = BitSequence(n=n, k=k, num_modes=1)
    terminals = env.terminal_states()
    assert terminals.words.shape == (env.num_words**env.num_slots, env.num_slots)
    assert np.all(np.asarray(terminals.terminated)) and np.all(np.asarray(terminals.words) >= 0)
    index = np.asarray(env.state_index(terminals))
    np.testing.assert_array_equal(index, np.flatnonzero(env.all_states().terminated))


def test_enumeration_refuses_large_instances():
    for method in (DEFAULT.all_states, DEFAULT.terminal_states):
        with pytest.raises(ConfigError, match="to enumerate states"):
            method()


def test_uniform_forward_policy_gives_a_uniform_terminal_distribution_by_exact_dp():
    env = BitSequence(n=6, k=2, num_modes=1)
    params = bitseq_params(env, modes=[[1, 1, 0, 0, 1, 1]])
    _, _, mask = metrics.transition_table(env)
    uniform = mask / np.maximum(mask.sum(axis=1, keepdims=True), 1)
    p = metrics.terminal_distribution_from_probabilities(env, params, uniform)
    full = np.asarray(env.all_states().terminated)
    np.testing.assert_allclose(p[full], 1 / env.num_words**env.num_slots, rtol=1e-12)
    assert np.all(p[~full] == 0)
    target = metrics.target_distribution(env, params)
    assert target.argmax() == int(env.state_index(_state(env, [3, 0, 3])))


def test_test_set_flips_j_bits_of_each_mode_for_j_from_1_to_n():
    params = _params(DEFAULT)
    test_set = bitseq_test_set(DEFAULT, params, seed=0)
    assert test_set.shape == (7200, 120) and test_set.dtype == np.int8
    modes = np.repeat(np.asarray(params.modes), DEFAULT.n, axis=0)
    np.testing.assert_array_equal(np.sum(test_set != modes, axis=1), np.tile(np.arange(1, 121), 60))
    np.testing.assert_array_equal(test_set, bitseq_test_set(DEFAULT, params, seed=0))
    np.testing.assert_array_equal(words_to_bits(bits_to_words(test_set, DEFAULT.k), DEFAULT.k), test_set)
