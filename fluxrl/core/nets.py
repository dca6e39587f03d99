"""Small network builders shared by every algorithm family."""

from __future__ import annotations

from typing import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp


ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh, "swish": jax.nn.swish}


def _lecun_uniform(key: jax.Array, n_in: int, n_out: int) -> tuple[jax.Array, jax.Array]:
    return jax.nn.initializers.lecun_uniform()(key, (n_in, n_out)), jnp.zeros(n_out)


def _lecun_normal(key: jax.Array, n_in: int, n_out: int) -> tuple[jax.Array, jax.Array]:
    return jax.nn.initializers.lecun_normal()(key, (n_in, n_out)), jnp.zeros(n_out)


def _torch(key: jax.Array, n_in: int, n_out: int) -> tuple[jax.Array, jax.Array]:
    # PyTorch's nn.Linear default: kaiming_uniform(a=sqrt(5)) weights and biases both uniform in +-1/sqrt(fan_in).
    return tuple(jax.random.uniform(k, size, minval=-1.0, maxval=1.0) / n_in ** 0.5
                 for k, size in zip(jax.random.split(key), ((n_in, n_out), (n_out,))))


def _equinox(key: jax.Array, n_in: int, n_out: int) -> tuple[jax.Array, jax.Array]:
    layer = eqx.nn.Linear(n_in, n_out, key=key)  # PyTorch's distribution as equinox draws it
    return layer.weight.T, layer.bias


# Weight initialisers by name: (key, fan_in, fan_out) -> ([in, out] weights, biases) of one layer.
INITS = {"equinox": _equinox, "lecun": _lecun_uniform, "lecun_normal": _lecun_normal, "torch": _torch}


class MLP(eqx.Module):
    """An MLP on [..., in] inputs whose weights are stored [in, out], so a batch runs as x @ w with no transposed
    operand; layer sizes, activation, initialiser (`INITS`) and a scale of the last layer's weights are chosen.

    Its input is a float vector or, for a one-hot input, the positions of its ones (an integer vector): the first
    layer then adds up weight rows, the same function without the multiplications by zero."""

    weights: tuple[jax.Array, ...]
    biases: tuple[jax.Array, ...]
    activation: str = eqx.field(static=True)

    def __init__(self, sizes: Sequence[int], key: jax.Array, activation: str = "relu", init: str = "equinox",
                 output_scale: float = 1.0):
        keys = jax.random.split(key, len(sizes) - 1)
        layers = [INITS[init](k, n_in, n_out) for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:])]
        self.weights = tuple(weight for weight, _ in layers[:-1]) + (layers[-1][0] * output_scale,)
        self.biases = tuple(bias for _, bias in layers)
        self.activation = activation

    @property
    def out_size(self) -> int:
        """Size of the output."""
        return int(self.weights[-1].shape[1])

    def __call__(self, x: jax.Array) -> jax.Array:
        """The output for inputs [..., in] (one-hot positions: one input)."""
        return self.forward_cached(x)[0]

    def forward_cached(self, x: jax.Array) -> tuple[jax.Array, tuple[jax.Array, ...]]:
        """(output, hidden): `hidden` holds the activation output of every hidden layer."""
        out, hidden = _first_layer(self.weights[0], x) + self.biases[0], []
        for weight, bias in zip(self.weights[1:], self.biases[1:]):
            hidden.append(ACTIVATIONS[self.activation](out))
            out = hidden[-1] @ weight + bias
        return out, tuple(hidden)

    def linearized(self, change: MLP, x: jax.Array, hidden: tuple[jax.Array, ...]) -> jax.Array:
        """The outputs' first-order change for a batch of inputs under a change of the arrays, from the batch's
        `hidden` (no forward pass); linear in `change`, so its transpose is the parameter gradient. ReLU only."""
        if self.activation != "relu":
            raise ValueError(f"linearized needs a ReLU MLP, not {self.activation}.")
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
    # Float inputs keep their precision (float64 gradient checks); boolean ones become float32.
    return (x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)) @ weight


def mlp(in_size: int, out_size: int, width: int, depth: int, key: jax.Array) -> MLP:
    """A ReLU MLP with `depth` hidden layers of `width` units, initialised as equinox's `eqx.nn.MLP`."""
    return MLP((in_size, *(width,) * depth, out_size), key)


def split_params(module: eqx.Module) -> tuple:
    """(arrays, static): the trainable arrays of a module as a pytree, and the rest."""
    return eqx.partition(module, eqx.is_array)
