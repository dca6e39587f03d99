"""A GFlowNet environment of one's own: DNA words of `length` letters built left to right, rewarded for their GC
content, log R(x) = beta * (fraction of G and C in x). It is none of fluxrl's environments; it meets the `DAGEnv`
protocol (fluxrl.envs.gflownet.base) and so trains with every GFlowNet algorithm:

    fluxrl train gflownet --loss tb --env examples.gc_content:make_env --env-arg length=6 --env-arg beta=4

or from Python with `CustomEnvConfig("examples.gc_content:make_env", (("length", 6),))`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

LETTERS = "ACGT"  # action i appends LETTERS[i]; G and C are 1 and 2


class Word(NamedTuple):
    """Letters so far (-1 past the end) and how many."""

    letters: jax.Array
    length: jax.Array
    terminated: jax.Array


@dataclass(frozen=True)
class GCContent:
    """Words of exactly `length` letters; the last letter ends the trajectory (no exit action)."""

    length: int = 6
    beta: float = 4.0

    num_actions = 4
    num_backward_actions = 1  # a word has one parent: itself less its last letter
    exit_action = -1

    @property
    def max_length(self) -> int:
        return self.length

    @property
    def obs_size(self) -> int:
        return 5 * self.length  # one-hot over (empty, A, C, G, T) per position

    def default_params(self) -> float:
        return self.beta

    def reset(self, params, key):
        return Word(jnp.full(self.length, -1, jnp.int32), jnp.int32(0), jnp.array(False))

    def forward_mask(self, state):
        return jnp.broadcast_to(~state.terminated, (4,))

    def backward_mask(self, state):
        return jnp.reshape(state.length > 0, (1,))

    def step(self, state, action):
        letters = state.letters.at[state.length].set(action.astype(jnp.int32), mode="drop")
        length = state.length + 1
        return Word(letters, length, length == self.length)

    def backward_step(self, state, backward_action):
        length = state.length - 1
        return Word(state.letters.at[length].set(-1, mode="drop"), length, jnp.array(False))

    def backward_action(self, state, action):
        return jnp.int32(0)

    def is_terminal(self, state):
        return state.terminated

    def log_reward(self, params, state):
        gc = jnp.sum((state.letters == 1) | (state.letters == 2)) / self.length
        return (params * gc).astype(jnp.float32)

    def obs(self, state):
        return jax.nn.one_hot(state.letters + 1, 5, dtype=jnp.float32).reshape(-1)

    def log_partition(self, params) -> float:
        """log Z = length * log(2 + 2 exp(beta / length)): each letter is G or C with weight exp(beta / length)."""
        return self.length * float(np.log(2 + 2 * np.exp(params / self.length)))

    def words(self):
        """Every word, as strings (for checking a sampler)."""
        return ["".join(w) for w in itertools.product(LETTERS, repeat=self.length)]


def make_env(length: int = 6, beta: float = 4.0) -> GCContent:
    """The environment, built from command-line arguments."""
    return GCContent(int(length), float(beta))
