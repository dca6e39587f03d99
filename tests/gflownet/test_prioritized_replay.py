"""Prioritised replay: what is drawn, how often, with which weight, and what an add stores."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxrl.gflownet.replay import per_add, per_init, per_sample, per_update

# A raw threefry key whose last uniform of a (256,) draw is 1 - 2^-23, the largest float32 below 1: the top
# stratum's point (255 + u) * total / 256 rounds to the total itself.
TOP_STRATUM_ROUNDS_UP = np.array([567298298, 3336409831], np.uint32)


def _filled(count: int, capacity: int, priorities) -> object:
    """A buffer of `capacity` float slots holding items 0..count-1 with the given priorities."""
    buffer = per_init(jnp.float32(0.0), capacity)
    buffer = per_add(buffer, jnp.arange(count, dtype=jnp.float32), jnp.ones(count, bool))
    return per_update(buffer, jnp.arange(count), jnp.asarray(priorities, jnp.float32))


def test_sampling_frequencies_are_proportional_to_priority_to_the_alpha():
    alpha, count, capacity, batch_size, calls = 0.7, 100, 128, 256, 200
    priorities = np.arange(1.0, count + 1.0)
    buffer = _filled(count, capacity, priorities)
    keys = jax.random.split(jax.random.PRNGKey(0), calls)
    items, indices, _ = jax.jit(jax.vmap(lambda k: per_sample(buffer, k, batch_size, alpha, jnp.float32(1.0))))(keys)
    np.testing.assert_array_equal(items, np.asarray(indices, np.float32))
    draws = calls * batch_size
    observed = np.bincount(np.asarray(indices).ravel(), minlength=capacity) / draws
    expected = np.zeros(capacity)
    expected[:count] = priorities ** alpha / np.sum(priorities ** alpha)
    tv = 0.5 * np.abs(observed - expected).sum()
    # The draws are independent (one uniform per stratum and call), so E|f_i - p_i| <= sqrt(p_i / n) and
    # E[tv] <= 0.5 sqrt(K / n) = 0.022 for K = 100 items, n = 51,200 draws; one draw moves tv by at most 1/n, so
    # (McDiarmid) tv exceeds its mean by sqrt(ln(1e9) / 2n) = 0.014 with probability below 1e-9.
    bound = 0.5 * np.sqrt(count / draws) + np.sqrt(np.log(1e9) / (2 * draws))
    assert tv < bound, (tv, bound)
    assert observed[count:].sum() == 0


def test_an_empty_slot_is_never_drawn_when_the_top_stratum_rounds_up_to_the_total():
    key = jax.random.wrap_key_data(jnp.asarray(TOP_STRATUM_ROUNDS_UP), impl="threefry2x32")
    # The premise: this key's top-stratum point is the total, which passes every slot of the cumulative sum.
    u = jax.random.uniform(key, (256,))[-1]
    assert float(jnp.float32(255.0) + u) == 256.0, "the key no longer rounds up: find another with u > 1 - 2^-17"
    count, capacity = 5, 8
    buffer = _filled(count, capacity, [1.0, 2.0, 3.0, 4.0, 5.0])
    items, indices, weights = jax.jit(lambda k: per_sample(buffer, k, 256, 0.5, jnp.float32(1.0)))(key)
    assert int(indices.max()) == count - 1
    assert np.all(np.isfinite(weights)) and np.all(weights > 0)
    np.testing.assert_array_equal(items, np.asarray(indices, np.float32))


@jax.jit
def _draw_from_prefix(count, priorities, alpha, key):
    """64 draws from a buffer of 32 slots whose first `count` hold items with the given priorities."""
    buffer = per_add(per_init(jnp.float32(0.0), 32), jnp.arange(16, dtype=jnp.float32), jnp.arange(16) < count)
    # Fixed shapes for every count: slots past count - 1 repeat the update of slot count - 1.
    indices = jnp.minimum(jnp.arange(16), count - 1)
    return per_sample(per_update(buffer, indices, priorities[indices]), key, 64, alpha, jnp.float32(0.6))


@settings(max_examples=40, deadline=None)
@given(count=st.integers(1, 16), priorities=st.lists(st.floats(1e-6, 1e3), min_size=16, max_size=16),
       alpha=st.floats(0.0, 2.0), seed=st.integers(0, 2**31 - 1))
def test_only_filled_slots_are_drawn_and_weights_are_finite(count, priorities, alpha, seed):
    _, indices, weights = _draw_from_prefix(count, jnp.array(priorities, jnp.float32), alpha,
                                            jax.random.PRNGKey(seed))
    assert int(indices.max()) < count
    assert np.all(np.isfinite(weights)) and float(weights.max()) == pytest.approx(1.0)


def test_importance_weights_match_the_formula_on_a_hand_computed_case():
    # p = 1, 4, 9 and alpha = 1/2: masses 1, 2, 3 of 6. Six strata of width 1 hit items 0, 1, 1, 2, 2, 2.
    buffer = _filled(3, 4, [1.0, 4.0, 9.0])
    _, indices, weights = per_sample(buffer, jax.random.PRNGKey(3), 6, 0.5, jnp.float32(0.5))
    np.testing.assert_array_equal(indices, [0, 1, 1, 2, 2, 2])
    # (N P)^-beta with N = 3, P = 1/6, 2/6, 3/6 and beta = 1/2: sqrt(2), 1, sqrt(2/3); divided by sqrt(2).
    expected = np.array([np.sqrt(2), 1.0, 1.0, np.sqrt(2 / 3), np.sqrt(2 / 3), np.sqrt(2 / 3)]) / np.sqrt(2)
    np.testing.assert_allclose(weights, expected, rtol=1e-6)


_ADD = jax.jit(per_add)


@settings(max_examples=40, deadline=None)
@given(masks=st.lists(st.lists(st.booleans(), min_size=6, max_size=6), min_size=1, max_size=4))
def test_masked_add_stores_exactly_the_valid_items_in_order(masks):
    capacity = 8
    # Item 0, stored first and given priority 3, sets the largest priority seen.
    buffer = per_add(per_init(jnp.int32(0), capacity), jnp.array([0], jnp.int32), jnp.array([True]))
    buffer = per_update(buffer, jnp.array([0]), jnp.array([3.0]))
    stored, next_item = [0], 1  # what a ring of `capacity` slots holds: the valid items in batch order
    slots = np.zeros(capacity, np.int32)
    for mask in masks:
        items = jnp.arange(next_item, next_item + 6, dtype=jnp.int32)
        buffer = _ADD(buffer, items, jnp.array(mask))
        for item, valid in zip(range(next_item, next_item + 6), mask):
            if valid:
                slots[len(stored) % capacity] = item
                stored.append(item)
        next_item += 6
    size = min(len(stored), capacity)
    np.testing.assert_array_equal(np.asarray(buffer.items)[:size], slots[:size])
    assert int(buffer.size) == size and int(buffer.position) == len(stored) % capacity
    # New items enter at the largest priority seen (3.0); nothing was written past the filled slots.
    np.testing.assert_array_equal(np.asarray(buffer.priorities)[:size], 3.0)
    np.testing.assert_array_equal(np.asarray(buffer.priorities)[size:], 0.0)
    np.testing.assert_array_equal(np.asarray(buffer.items)[size:], 0)


def test_buffer_overwrites_oldest_and_skips_invalid_items():
    buffer = per_init(jnp.int32(0), capacity=4)
    buffer = per_add(buffer, jnp.array([1, 2, 3], jnp.int32), jnp.array([True, False, True]))
    buffer = per_add(buffer, jnp.array([4, 5, 6], jnp.int32), jnp.array([True, True, True]))
    # Writes 1, 3 then 4, 5, 6 into 4 slots: slot 0 is overwritten by 6.
    np.testing.assert_array_equal(buffer.items, [6, 3, 4, 5])
    assert int(buffer.size) == 4 and int(buffer.position) == 1


def _train(key, iterations: int = 30):
    """Add half-padded batches, sample, and update priorities, inside lax.scan; the state and every draw."""

    def iteration(buffer, key):
        item_key, mask_key, sample_key, td_key = jax.random.split(key, 4)
        items = {"state": jax.random.randint(item_key, (12, 4), 0, 8), "reward": jax.random.normal(item_key, (12,))}
        buffer = per_add(buffer, items, jax.random.bernoulli(mask_key, 0.5, (12,)))
        batch, indices, weights = per_sample(buffer, sample_key, 16, 0.6, jnp.float32(0.4))
        buffer = per_update(buffer, indices, jnp.abs(jax.random.normal(td_key, (16,))))
        return buffer, (indices, weights, buffer.size, batch["reward"])

    example = {"state": jnp.zeros(4, jnp.int32), "reward": jnp.float32(0.0)}
    return jax.lax.scan(iteration, per_init(example, 64), jax.random.split(key, iterations))


_TRAIN_SEEDS = jax.jit(jax.vmap(_train))


def test_vmapped_seeds_match_separate_runs_inside_scan():
    keys = jax.random.split(jax.random.PRNGKey(7), 3)
    buffers, (indices, weights, sizes, _) = _TRAIN_SEEDS(keys)
    # The first add can be all padding; from the first non-empty buffer on, draws stay in filled slots.
    drawn = np.asarray(sizes) > 0
    assert np.all(np.asarray(indices).max(axis=-1)[drawn] < np.asarray(sizes)[drawn])
    assert np.all(np.isfinite(np.asarray(weights)[drawn]))
    # One seed after the other (lax.map runs the unbatched program) gives the same draws and buffers.
    alone_buffers, (alone_indices, alone_weights, _, _) = jax.jit(lambda k: jax.lax.map(_train, k))(keys)
    np.testing.assert_array_equal(indices, alone_indices)
    np.testing.assert_allclose(weights, alone_weights, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), buffers, alone_buffers)
    # Deterministic given the key.
    again = _TRAIN_SEEDS(keys)
    jax.tree.map(np.testing.assert_array_equal, (buffers, indices), (again[0], again[1][0]))
