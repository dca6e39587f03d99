"""The Snake network of the meta-gradient group's public code (as the reference records it): Conv(32, 2x2, stride
2) -> Conv(32, 2x2) on the (rows, cols, 5) grid, then a policy MLP [64, 64] and a value MLP [128, 128] on the
flattened features; illegal moves are masked out of the logits."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from fluxrl.core.nets import MLP
from fluxrl.envs.jumanji import snake

if TYPE_CHECKING:
    from fluxrl.meta.a2c import A2CConfig

# The policy head's last layer starts small, so the first policy is near uniform over the legal moves.
POLICY_OUTPUT_SCALE = 0.01


class SnakeNet(eqx.Module):
    """The reference's network: two convolutions, then a policy MLP and a value MLP on the flattened features."""

    convs: tuple[tuple[jax.Array, jax.Array], ...]
    policy: MLP
    value: MLP

    def __init__(self, config: "A2CConfig", key: jax.Array):
        rows, cols, depth = snake.board_shape(config.env)
        conv_keys, policy_key, value_key = jax.random.split(key, 3)
        init = jax.nn.initializers.lecun_normal(in_axis=(0, 1, 2), out_axis=3)
        c = config.channels
        self.convs = tuple((init(k, (2, 2, d, c)), jnp.zeros(c))
                           for k, d in zip(jax.random.split(conv_keys, 2), (depth, c)))
        features = math.ceil(rows / 2) * math.ceil(cols / 2) * c
        self.policy = MLP((features, *config.policy_hidden, snake.NUM_ACTIONS), policy_key, init="lecun_normal",
                          output_scale=POLICY_OUTPUT_SCALE)
        self.value = MLP((features, *config.value_hidden, 1), value_key, init="lecun_normal")

    def features(self, grid: jax.Array) -> jax.Array:
        """The flattened convolution features [B, F] of grids [B, rows, cols, 5]."""
        x = grid
        for (weight, bias), stride in zip(self.convs, (2, 1)):
            x = jax.nn.relu(_conv2x2(x, weight, stride) + bias)
        return x.reshape(x.shape[0], -1)

    def __call__(self, grid: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(logits [..., 4], value [...]) for grids [..., rows, cols, 5]."""
        lead = grid.shape[:-3]
        x = self.features(grid.reshape(-1, *grid.shape[-3:]))
        return self.policy(x).reshape(*lead, -1), self.value(x)[:, 0].reshape(lead)

    def logits(self, grid: jax.Array) -> jax.Array:
        """The policy's logits [B, 4] alone (what a rollout needs) for grids [B, rows, cols, 5]."""
        return self.policy(self.features(grid))


def _conv2x2(x: jax.Array, weight: jax.Array, stride: int) -> jax.Array:
    """A 2 x 2 convolution with SAME padding (zeros after the last row and column, as TensorFlow's and Haiku's
    SAME for an even kernel) on [B, H, W, C], written as matrix products: XLA's CPU convolution, and the gradient
    of shifted slices, are several times slower than a product for kernels and boards this small."""
    batch, height, width, depth = x.shape
    if stride == 2 and height % 2 == 0 and width % 2 == 0:
        # Stride 2 on an even board: the 2 x 2 windows tile it without padding (space-to-depth, then a product).
        blocks = x.reshape(batch, height // 2, 2, width // 2, 2, depth).transpose(0, 1, 3, 2, 4, 5)
        return blocks.reshape(batch, height // 2, width // 2, 4 * depth) @ weight.reshape(4 * depth, -1)
    if stride == 1 and height * width <= _DENSE_POSITIONS:
        # A small board: the convolution as one dense [H W C, H W C'] matrix built from the kernel, which costs
        # (H W / 4) x the products' FLOPs but runs near the matrix-product peak, forward and backward.
        dense = jnp.einsum("opq,oic->piqc", _shifts(height, width), weight.reshape(4, depth, -1))
        out = x.reshape(batch, -1) @ dense.reshape(height * width * depth, -1)
        return out.reshape(batch, height, width, -1)
    out_h, out_w = -(-height // stride), -(-width // stride)
    pad_h = max((out_h - 1) * stride + 2 - height, 0)
    pad_w = max((out_w - 1) * stride + 2 - width, 0)
    x = jnp.pad(x, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))
    span_h, span_w = (out_h - 1) * stride + 1, (out_w - 1) * stride + 1
    patches = jnp.concatenate([x[:, i:i + span_h:stride, j:j + span_w:stride] for i in (0, 1) for j in (0, 1)],
                              axis=-1)
    return patches @ weight.reshape(-1, weight.shape[-1])


# Boards up to this many cells take the dense form of a stride-1 convolution (6 x 6 Snake's second layer, 3 x 3).
_DENSE_POSITIONS = 16


def _shifts(height: int, width: int) -> np.ndarray:
    """[4, H W, H W] 0/1: entry (o, p, q) is 1 when input cell p sits at kernel offset o of output cell q."""
    table = np.zeros((4, height * width, height * width), np.float32)
    for o, (di, dj) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        for i in range(height - di):
            for j in range(width - dj):
                table[o, (i + di) * width + j + dj, i * width + j] = 1.0
    return table


def masked_log_policy(logits: jax.Array, mask: jax.Array) -> jax.Array:
    """log pi over the 4 moves, illegal ones at a large negative value (all legal when none is)."""
    legal = mask | ~mask.any(-1, keepdims=True)
    return jax.nn.log_softmax(jnp.where(legal, logits, jnp.finfo(logits.dtype).min / 2), axis=-1)
