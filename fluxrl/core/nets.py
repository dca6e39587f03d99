"""Small network builders shared by every algorithm family."""

from __future__ import annotations

import equinox as eqx
import jax


def mlp(in_size: int, out_size: int, width: int, depth: int, key: jax.Array) -> eqx.nn.MLP:
    """A ReLU MLP with `depth` hidden layers of `width` units."""
    return eqx.nn.MLP(in_size, out_size, width, depth, activation=jax.nn.relu, key=key)


def split_params(module: eqx.Module) -> tuple:
    """(arrays, static): the trainable arrays of a module as a pytree, and the rest."""
    return eqx.partition(module, eqx.is_array)
