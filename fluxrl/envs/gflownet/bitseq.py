"""Non-autoregressive bit sequences: fill k-bit slots in any order (Malkin et al. 2022; Tiapkin et al. 2024).

A sequence of n bits is cut into n / k slots; a forward action writes one k-bit word into an empty slot, and the
trajectory ends when the last slot is filled. Word w is written most significant bit first, and slot i covers
bits [i * k, (i + 1) * k).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fluxrl.core.config import ConfigError, check_range
from fluxrl.envs.gflownet.base import MAX_ENUMERABLE_STATES

# The 8-bit blocks that modes are built from, per the reference setting.
MODE_BLOCKS = np.array([[int(bit) for bit in block] for block in
                        ("00000000", "11111111", "11110000", "00001111", "00111100")], np.int8)
MODE_BLOCK_SIZE = 8


class BitSequenceState(NamedTuple):
    """The word in each slot (-1 while empty) and whether every slot is filled."""

    words: jax.Array
    terminated: jax.Array


class BitSequenceParams(NamedTuple):
    """The mode set (int8 bits [num_modes, n]) and the inverse temperature of log R = -beta * d."""

    modes: jax.Array
    beta: float


def words_to_bits(words: jax.Array, k: int) -> jax.Array:
    """int8 bits [..., slots * k] of words [..., slots], each word most significant bit first."""
    shifts = jnp.arange(k - 1, -1, -1, dtype=jnp.int32)
    bits = (jnp.asarray(words, jnp.int32)[..., None] >> shifts) & 1
    return bits.reshape(bits.shape[:-2] + (-1,)).astype(jnp.int8)


def bits_to_words(bits: jax.Array, k: int) -> jax.Array:
    """int32 words [..., n // k] of bits [..., n], reading each k-bit group most significant bit first."""
    bits = jnp.asarray(bits, jnp.int32)
    groups = bits.reshape(bits.shape[:-1] + (bits.shape[-1] // k, k))
    return jnp.sum(groups << jnp.arange(k - 1, -1, -1, dtype=jnp.int32), axis=-1)


def generate_modes(n: int, num_modes: int, seed: int) -> np.ndarray:
    """num_modes distinct int8 bit strings of length n, each n / 8 blocks drawn uniformly from MODE_BLOCKS."""
    if n % MODE_BLOCK_SIZE:
        raise ConfigError(f"n must be a multiple of 8 to generate modes from 8-bit blocks, got {n}; "
                          "pass explicit modes to bitseq_params instead.")
    num_blocks = n // MODE_BLOCK_SIZE
    if num_modes > len(MODE_BLOCKS) ** num_blocks:
        raise ConfigError(f"num_modes must be <= 5**(n / 8) = {len(MODE_BLOCKS) ** num_blocks} so modes can be "
                          f"distinct, got {num_modes}.")
    rng = np.random.default_rng(seed)
    modes, seen = [], set()
    while len(modes) < num_modes:  # redraw duplicates, so the set has exactly num_modes distinct modes
        choice = tuple(rng.integers(len(MODE_BLOCKS), size=num_blocks).tolist())
        if choice not in seen:
            seen.add(choice)
            modes.append(MODE_BLOCKS[list(choice)].reshape(-1))
    return np.stack(modes)


def bitseq_params(env: BitSequence, beta: float = 2.0, modes=None) -> BitSequenceParams:
    """Reward parameters: explicit modes (bits [num_modes, n]) or the env's seeded mode set, and beta."""
    check_range("beta", beta, 0.0)
    if modes is None:
        modes = generate_modes(env.n, env.num_modes, env.mode_seed)
    modes = np.asarray(modes)
    if modes.shape != (env.num_modes, env.n):
        raise ConfigError(f"modes must have shape (num_modes, n) = ({env.num_modes}, {env.n}), got {modes.shape}.")
    if not np.isin(modes, (0, 1)).all():
        raise ConfigError("modes must contain only the bits 0 and 1.")
    return BitSequenceParams(jnp.asarray(modes, jnp.int8), float(beta))


def bitseq_test_set(env: BitSequence, params: BitSequenceParams, seed: int = 0) -> np.ndarray:
    """int8 bits [num_modes * n, n]: for each mode (outer) and each j in 1..n (inner), the mode with j distinct
    random bits flipped."""
    rng = np.random.default_rng(seed)
    modes = np.asarray(params.modes, np.int8)
    sequences = np.repeat(modes, env.n, axis=0)
    for row in range(len(sequences)):
        flips = rng.choice(env.n, size=row % env.n + 1, replace=False)
        sequences[row, flips] ^= 1
    return sequences


@dataclass(frozen=True)
class BitSequence:
    """n bits in n / k slots; action slot * 2**k + w writes word w into an empty slot; no exit action."""

    n: int = 120
    k: int = 8
    num_modes: int = 60
    mode_seed: int = 0
    mode_threshold: int = 30

    def __post_init__(self):
        for name in ("n", "k", "num_modes", "mode_seed", "mode_threshold"):
            if not isinstance(getattr(self, name), int) or isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be an integer, got {getattr(self, name)!r}.")
        if not 1 <= self.k <= 16:
            raise ConfigError(f"k must be between 1 and 16 bits per word, got {self.k}.")
        if self.n < self.k or self.n % self.k:
            raise ConfigError(f"n must be a positive multiple of k = {self.k}, got {self.n}.")
        if self.num_modes < 1:
            raise ConfigError(f"num_modes must be >= 1, got {self.num_modes}.")
        if self.mode_seed < 0:
            raise ConfigError(f"mode_seed must be >= 0, got {self.mode_seed}.")
        if self.mode_threshold < 0:
            raise ConfigError(f"mode_threshold must be >= 0 bits, got {self.mode_threshold}.")

    @property
    def num_slots(self) -> int:
        return self.n // self.k

    @property
    def num_words(self) -> int:
        return 2**self.k

    @property
    def num_actions(self) -> int:
        return self.num_slots * self.num_words

    @property
    def num_backward_actions(self) -> int:
        return self.num_slots

    @property
    def exit_action(self) -> int:
        return -1

    @property
    def max_length(self) -> int:
        return self.num_slots

    @property
    def obs_size(self) -> int:
        return self.num_slots

    @property
    def num_states(self) -> int:
        return (self.num_words + 1) ** self.num_slots

    def default_params(self) -> BitSequenceParams:
        """Modes generated from mode_seed, beta = 2."""
        return bitseq_params(self)

    def reset(self, params: BitSequenceParams, key: jax.Array) -> BitSequenceState:
        """Every slot empty."""
        del params, key
        return BitSequenceState(jnp.full(self.num_slots, -1, jnp.int32), jnp.array(False))

    def forward_mask(self, state: BitSequenceState) -> jax.Array:
        """Every word for every empty slot; nothing after termination."""
        return jnp.repeat(state.words < 0, self.num_words) & ~state.terminated

    def backward_mask(self, state: BitSequenceState) -> jax.Array:
        """Every filled slot can be emptied."""
        return state.words >= 0

    def step(self, state: BitSequenceState, action: jax.Array) -> BitSequenceState:
        """Write word action % 2**k into slot action // 2**k; terminated once every slot is filled."""
        words = state.words.at[action // self.num_words].set(action % self.num_words)
        return BitSequenceState(words, jnp.all(words >= 0))

    def backward_step(self, state: BitSequenceState, backward_action: jax.Array) -> BitSequenceState:
        """Empty slot `backward_action`."""
        return BitSequenceState(state.words.at[backward_action].set(-1), jnp.array(False))

    def backward_action(self, state: BitSequenceState, action: jax.Array) -> jax.Array:
        """The slot that forward `action` fills."""
        del state
        return action // self.num_words

    def is_terminal(self, state: BitSequenceState) -> jax.Array:
        """Whether every slot is filled."""
        return state.terminated

    def hamming_distances(self, params: BitSequenceParams, state: BitSequenceState) -> jax.Array:
        """Hamming distance [num_modes] from the bits of a full state to each mode."""
        bits = words_to_bits(state.words, self.k)
        return jnp.sum(bits != params.modes, axis=-1)

    def log_reward(self, params: BitSequenceParams, state: BitSequenceState) -> jax.Array:
        """log R(x) = -beta * min_m Hamming(x, m), the "-beta * d" form (not R = exp(-beta * d / n))."""
        return -params.beta * jnp.min(self.hamming_distances(params, state)).astype(jnp.float32)

    def mode_hits(self, params: BitSequenceParams, state: BitSequenceState) -> jax.Array:
        """Which modes lie within Hamming distance mode_threshold (inclusive) of the full state."""
        return self.hamming_distances(params, state) <= self.mode_threshold

    def obs(self, state: BitSequenceState) -> jax.Array:
        """int32 tokens [num_slots]: the slot's word, or num_words for an empty slot (vocabulary num_words + 1)."""
        return jnp.where(state.words < 0, self.num_words, state.words).astype(jnp.int32)

    def _check_enumerable(self) -> None:
        if self.num_states > MAX_ENUMERABLE_STATES:
            raise ConfigError(f"(2**k + 1)**(n / k) must be <= {MAX_ENUMERABLE_STATES} to enumerate states, "
                              f"got {self.num_states} for n={self.n}, k={self.k}.")

    def all_states(self) -> BitSequenceState:
        """Every state, partial and full (terminated), in the order of state_index."""
        self._check_enumerable()
        digits = np.indices((self.num_words + 1,) * self.num_slots).reshape(self.num_slots, -1).T
        words = digits - 1
        return BitSequenceState(jnp.asarray(words, jnp.int32), jnp.asarray((words >= 0).all(axis=1)))

    def terminal_states(self) -> BitSequenceState:
        """Every full sequence, terminated, in lexicographic order of its words."""
        self._check_enumerable()
        words = np.indices((self.num_words,) * self.num_slots).reshape(self.num_slots, -1).T
        return BitSequenceState(jnp.asarray(words, jnp.int32), jnp.ones(len(words), bool))

    def state_index(self, state: BitSequenceState) -> jax.Array:
        """Mixed-radix index with digit word + 1 per slot, first slot most significant."""
        self._check_enumerable()
        strides = (self.num_words + 1) ** jnp.arange(self.num_slots - 1, -1, -1)
        return jnp.sum((state.words + 1) * strides, axis=-1)
