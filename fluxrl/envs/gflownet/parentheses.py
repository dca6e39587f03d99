"""Parentheses: build a sequence of "(" and ")" left to right, then exit; balanced sequences score best.

The balanced-parentheses task of the LGGFN paper (Malek, Sharma and Lahlou 2025). Token 0 is "(" and token 1
is ")"; action 0 appends "(", action 1 appends ")" and action 2 exits. Any prefix may be built (unbalanced ones
just earn little reward), up to max_tokens tokens. The empty sequence cannot exit, so every object x has at
least one token. Each non-empty sequence has exactly one parent, itself less its last token.

log R(x) = log_reward_balanced if x is a rewarded balanced sequence, else log_reward_short if len(x) <=
short_length, else log_reward_other. Balanced: every prefix has at least as many "(" as ")", and the totals are
equal. Which balanced sequences are rewarded is `rewarded`: "full" (the official code's reward,
src/envs/balanced_parentheses.py:36-47, 66-73 of Idriss-Malek/Loss-Guided-GFN: only a balanced sequence that fills
all max_tokens slots; a shorter balanced one scores like any other sequence of its length) or "any" (every
balanced sequence).

fluxrl's modes (`modes_found`) are the balanced sequences (Dyck words) of lengths 2, 4, ..., max_tokens;
`mode_index` ranks them exactly, shorter lengths first and lexicographically ("(" before ")") within a length.
The paper's modes are narrower: a balanced sequence that fills all max_tokens slots (`is_full_mode`; the
official `is_balanced_parentheses` rejects any sequence whose last slot is empty), counted by the metric
`unique_modes_sampled` (see `fluxrl/gflownet/evaluation.py` and docs/metrics.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fluxrl.core.config import ConfigError, check_range

OPEN, CLOSE, EMPTY = 0, 1, -1


class ParenthesesState(NamedTuple):
    """Tokens [max_tokens] (0 "(", 1 ")", -1 past the end), the number of tokens, and whether it has exited."""

    tokens: jax.Array
    length: jax.Array
    terminated: jax.Array


class ParenthesesParams(NamedTuple):
    """log R of a balanced sequence, of an unbalanced one of length <= short_length, and of any other."""

    log_reward_balanced: float = 0.0
    log_reward_short: float = -1.5
    log_reward_other: float = -10.0
    short_length: int = 8


def parentheses_params(log_reward_balanced: float = 0.0, log_reward_short: float = -1.5,
                       log_reward_other: float = -10.0, short_length: int = 8) -> ParenthesesParams:
    """Reward parameters, by default those of the LGGFN paper (0, -1.5 up to 8 tokens, -10 beyond)."""
    for name, value in (("log_reward_balanced", log_reward_balanced), ("log_reward_short", log_reward_short),
                        ("log_reward_other", log_reward_other)):
        if not np.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {value}.")
    if not isinstance(short_length, (int, np.integer)) or isinstance(short_length, bool):
        raise ConfigError(f"short_length must be an integer, got {short_length!r}.")
    check_range("short_length", short_length, 0)
    return ParenthesesParams(float(log_reward_balanced), float(log_reward_short), float(log_reward_other),
                             int(short_length))


def completion_counts(max_tokens: int) -> np.ndarray:
    """int64 [max_tokens + 1, max_tokens + 2]: entry [r, h] counts the ways to append r tokens to a prefix of
    height h (#"(" - #")") so that every prefix stays at height >= 0 and the sequence ends balanced."""
    counts = np.zeros((max_tokens + 1, max_tokens + 2), np.int64)
    counts[0, 0] = 1
    for r in range(1, max_tokens + 1):
        counts[r, :-1] += counts[r - 1, 1:]  # append "("
        counts[r, 1:] += counts[r - 1, :-1]  # append ")"
    return counts


def catalan(n: int) -> int:
    """The n-th Catalan number, the number of balanced sequences of length 2n."""
    value = 1
    for k in range(n):
        value = value * 2 * (2 * k + 1) // (k + 2)
    return value


@dataclass(frozen=True)
class Parentheses:
    """Sequences of at most max_tokens parentheses; action 0 appends "(", 1 appends ")", 2 exits."""

    max_tokens: int = 32
    rewarded: str = "full"  # which balanced sequences earn log_reward_balanced: "full" (official) or "any"

    def __post_init__(self):
        if self.rewarded not in ("full", "any"):
            raise ConfigError(f"rewarded must be one of full, any, got {self.rewarded!r}.")
        if not isinstance(self.max_tokens, int) or isinstance(self.max_tokens, bool) or self.max_tokens < 2:
            raise ConfigError(f"max_tokens must be an integer >= 2, got {self.max_tokens!r}.")
        if self.max_tokens > 36:  # keeps completion counts and mode indices within int32
            raise ConfigError(f"max_tokens must be <= 36 so mode indices fit in int32, got {self.max_tokens}.")

    @property
    def num_actions(self) -> int:
        return 3

    @property
    def num_backward_actions(self) -> int:
        return 1

    @property
    def exit_action(self) -> int:
        return 2

    @property
    def max_length(self) -> int:
        return self.max_tokens + 1

    @property
    def obs_size(self) -> int:
        return 3 * self.max_tokens

    @property
    def num_modes(self) -> int:
        """Balanced sequences of lengths 2, 4, ..., max_tokens: the Catalan numbers C_1 .. C_{max_tokens // 2}."""
        return sum(catalan(n) for n in range(1, self.max_tokens // 2 + 1))

    def default_params(self) -> ParenthesesParams:
        """The LGGFN paper's rewards."""
        return parentheses_params()

    def reset(self, params: ParenthesesParams, key: jax.Array) -> ParenthesesState:
        """The empty sequence, not yet terminated."""
        del params, key
        return ParenthesesState(jnp.full(self.max_tokens, EMPTY, jnp.int32), jnp.int32(0), jnp.array(False))

    def forward_mask(self, state: ParenthesesState) -> jax.Array:
        """Append either token while there is room; exit once there is a token; nothing after termination."""
        room = state.length < self.max_tokens
        return jnp.stack([room, room, state.length > 0]) & ~state.terminated

    def backward_mask(self, state: ParenthesesState) -> jax.Array:
        """The one backward action, removing the last token, exists when there is a token."""
        return jnp.reshape(state.length > 0, (1,))

    def step(self, state: ParenthesesState, action: jax.Array) -> ParenthesesState:
        """Append token `action`, or mark terminated when `action` is the exit."""
        is_exit = action == self.exit_action
        tokens = jnp.where(is_exit, state.tokens, state.tokens.at[state.length].set(action, mode="drop"))
        length = state.length + jnp.where(is_exit, 0, 1).astype(jnp.int32)
        return ParenthesesState(tokens.astype(jnp.int32), length, state.terminated | is_exit)

    def backward_step(self, state: ParenthesesState, backward_action: jax.Array) -> ParenthesesState:
        """Remove the last token (the only backward action, 0)."""
        del backward_action
        length = state.length - 1
        tokens = state.tokens.at[length].set(EMPTY, mode="drop")
        return ParenthesesState(tokens, length, jnp.array(False))

    def backward_action(self, state: ParenthesesState, action: jax.Array) -> jax.Array:
        """Always 0, the removal of the last token (undefined for exit, whose P_B is 1)."""
        del state, action
        return jnp.int32(0)

    def is_terminal(self, state: ParenthesesState) -> jax.Array:
        """Whether the exit action has been taken."""
        return state.terminated

    def _heights(self, state: ParenthesesState) -> jax.Array:
        """int32 [max_tokens]: #"(" - #")" after each position (constant past the end)."""
        steps = jnp.where(state.tokens == OPEN, 1, jnp.where(state.tokens == CLOSE, -1, 0))
        return jnp.cumsum(steps).astype(jnp.int32)

    def is_balanced(self, state: ParenthesesState) -> jax.Array:
        """Whether the sequence is non-empty, never dips below height 0, and ends at height 0."""
        heights = self._heights(state)
        return (state.length > 0) & jnp.all(heights >= 0) & (heights[-1] == 0)

    def is_full_mode(self, state: ParenthesesState) -> jax.Array:
        """Whether the sequence is a mode in the paper's sense: balanced and filling all max_tokens slots."""
        return self.is_balanced(state) & (state.length == self.max_tokens)

    def log_reward(self, params: ParenthesesParams, state: ParenthesesState) -> jax.Array:
        """log_reward_balanced if a rewarded balanced sequence (see `rewarded`), else log_reward_short up to
        short_length tokens, else log_reward_other."""
        unbalanced = jnp.where(state.length <= params.short_length, params.log_reward_short,
                               params.log_reward_other)
        rewarded = self.is_full_mode(state) if self.rewarded == "full" else self.is_balanced(state)
        return jnp.where(rewarded, params.log_reward_balanced, unbalanced).astype(jnp.float32)

    def mode_index(self, params: ParenthesesParams, state: ParenthesesState) -> jax.Array:
        """int32 index of a balanced sequence among all balanced sequences of lengths 2..max_tokens (shorter
        first, then lexicographic with "(" < ")"), or num_modes when it is not balanced."""
        del params
        counts = completion_counts(self.max_tokens)
        offsets = np.zeros(self.max_tokens + 1, np.int64)  # balanced sequences shorter than each length
        offsets[1:] = np.cumsum([catalan(n // 2) if n % 2 == 0 and n > 0 else 0 for n in range(self.max_tokens)])
        counts = jnp.asarray(np.minimum(counts, np.iinfo(np.int32).max), jnp.int32)
        positions = jnp.arange(self.max_tokens, dtype=jnp.int32)
        heights = self._heights(state)
        before = jnp.concatenate([jnp.zeros(1, jnp.int32), heights[:-1]])  # height before each position
        remaining = jnp.clip(state.length - positions - 1, 0, self.max_tokens)
        # A ")" at a position passes over every balanced word that has "(" there and the same prefix before it.
        skipped = counts[remaining, jnp.clip(before + 1, 0, self.max_tokens + 1)]
        rank = jnp.sum(jnp.where((state.tokens == CLOSE) & (positions < state.length), skipped, 0))
        index = jnp.asarray(offsets, jnp.int32)[state.length] + rank
        return jnp.where(self.is_balanced(state), index, self.num_modes).astype(jnp.int32)

    def obs(self, state: ParenthesesState) -> jax.Array:
        """float32 [3 * max_tokens]: per position, a one-hot over (empty, "(", ")"), positions concatenated."""
        return jax.nn.one_hot(state.tokens + 1, 3, dtype=jnp.float32).reshape(-1)

    @property
    def vocab_size(self) -> int:
        """Token kinds: "(" and ")"."""
        return 2

    def tokens(self, state: ParenthesesState) -> jax.Array:
        """int32 [max_tokens]: 0 "(", 1 ")", -1 past the end (what a sequence model reads)."""
        return state.tokens

    def obs_hot_indices(self, state: ParenthesesState) -> jax.Array:
        """Positions of the ones in `obs(state)`, so a linear layer on it can add up weight columns instead."""
        return state.tokens + 1 + 3 * jnp.arange(self.max_tokens, dtype=jnp.int32)
