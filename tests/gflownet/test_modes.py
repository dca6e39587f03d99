"""The run's set of modes found: a packed bit set filled from batches of terminal states."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxrl.gflownet.modes import add_modes, empty_mode_set, modes_found


class _IndexedModes:
    """A stand-in environment whose terminal 'state' is its own mode index (num_modes = not a mode)."""

    num_modes = 100

    def mode_index(self, params, state):
        return state


class _MultiHotModes:
    """A stand-in environment whose terminal 'state' is a multi-hot row over its modes."""

    num_modes = 70

    def mode_hits(self, params, state):
        return state


@settings(max_examples=40, deadline=None)
@given(batches=st.lists(st.lists(st.integers(0, 100), min_size=1, max_size=24), min_size=1, max_size=4))
def test_indexed_modes_found_equals_the_distinct_modes_sampled(batches):
    env = _IndexedModes()
    modes_hit = empty_mode_set(env)
    add = jax.jit(lambda hit, batch: add_modes(env, None, hit, batch))
    for batch in batches:  # padded with non-modes to one shape, so one compilation serves every example
        padded = batch + [env.num_modes] * (24 - len(batch))
        modes_hit = add(modes_hit, jnp.asarray(padded, jnp.int32))
    distinct = {i for batch in batches for i in batch if i < env.num_modes}
    assert int(modes_found(modes_hit)) == len(distinct)
    bits = np.unpackbits(np.asarray(modes_hit).view(np.uint8), bitorder="little")[:env.num_modes]
    np.testing.assert_array_equal(np.flatnonzero(bits), sorted(distinct))


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.lists(st.booleans(), min_size=70, max_size=70), min_size=1, max_size=8))
def test_multi_hot_modes_found_equals_the_union_of_hits(rows):
    env = _MultiHotModes()
    modes_hit = add_modes(env, None, empty_mode_set(env), jnp.asarray(rows))
    assert int(modes_found(modes_hit)) == int(np.any(np.asarray(rows), axis=0).sum())
