"""Small network builders shared by every algorithm family."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp


class MLP(eqx.Module):
    """A ReLU MLP whose weights are stored [in, out], so a batch runs as x @ w with no transposed operand.

    Its input is a float vector or, for a one-hot input, the positions of its ones (an integer vector): the first
    layer then adds up weight rows, the same function without the multiplications by zero."""

    weights: tuple[jax.Array, ...]
    biases: tuple[jax.Array, ...]

    def __init__(self, in_size: int, out_size: int, width: int, depth: int, key: jax.Array):
        layers = eqx.nn.MLP(in_size, out_size, width, depth, key=key).layers  # equinox's initialisation
        self.weights = tuple(layer.weight.T for layer in layers)
        self.biases = tuple(layer.bias for layer in layers)

    def __call__(self, x: jax.Array) -> jax.Array:
        """The output for one input."""
        return self.forward_cached(x)[0]

    def forward_cached(self, x: jax.Array) -> tuple[jax.Array, tuple[jax.Array, ...]]:
        """(output, hidden) for one input: `hidden` holds the ReLU output of every hidden layer."""
        out, hidden = _first_layer(self.weights[0], x) + self.biases[0], []
        for weight, bias in zip(self.weights[1:], self.biases[1:]):
            hidden.append(jax.nn.relu(out))
            out = hidden[-1] @ weight + bias
        return out, tuple(hidden)

    def linearized(self, change: MLP, x: jax.Array, hidden: tuple[jax.Array, ...]) -> jax.Array:
        """The outputs' first-order change for a batch of inputs under a change of the arrays, from the batch's
        `hidden` (no forward pass); linear in `change`, so its transpose is the parameter gradient."""
        out = _add_to_rows(jax.vmap(_first_layer, (None, 0))(change.weights[0], x), change.biases[0])
        for weight, change_weight, change_bias, h in zip(self.weights[1:], change.weights[1:], change.biases[1:],
                                                         hidden):
            out = _add_to_rows(jnp.where(h > 0, out, 0.0) @ weight + h @ change_weight, change_bias)
        return out


def _add_to_rows(rows: jax.Array, bias: jax.Array) -> jax.Array:
    # As a product with a column of ones, so the transpose sums the rows by a matrix product: XLA's CPU reductions
    # split across threads, which would make the gradient depend on the number of cores.
    return rows + jnp.ones((rows.shape[0], 1), rows.dtype) @ bias[None, :]


def _first_layer(weight: jax.Array, x: jax.Array) -> jax.Array:
    if jnp.issubdtype(x.dtype, jnp.integer):
        return jnp.sum(weight[x], axis=0)
    return x.astype(jnp.float32) @ weight


def mlp(in_size: int, out_size: int, width: int, depth: int, key: jax.Array) -> MLP:
    """A ReLU MLP with `depth` hidden layers of `width` units."""
    return MLP(in_size, out_size, width, depth, key)


def split_params(module: eqx.Module) -> tuple:
    """(arrays, static): the trainable arrays of a module as a pytree, and the rest."""
    return eqx.partition(module, eqx.is_array)
