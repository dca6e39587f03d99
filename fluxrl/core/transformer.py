"""A Transformer encoder over a fixed-length token sequence (bidirectional, or causal as GPT-2), with per-token and
pooled heads.

The parameters live in the usual equinox layers, so initialisation and the pytree layout are equinox's. The
forward pass, though, is written as whole-sequence products over [seq_len, d_model] arrays rather than as
per-token `jax.vmap`s of those layers, and computes what `eqx.nn.MultiheadAttention` and `eqx.nn.LayerNorm`
compute (equal up to float rounding) in the forms that XLA runs fastest on CPU once a caller vmaps the encoder
over a batch of sequences. The choices, each measured on a 15-token, d_model 64 encoder:

- attention logits are laid out key-major, [key, head, query], so the softmax over keys reduces across rows
  instead of along rows of 15 (attention was a quarter of the forward pass);
- LayerNorm has a hand-written VJP (the usual closed form), which XLA turns into fewer passes than the
  differentiated mean / variance graph.
"""

from __future__ import annotations

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp

from fluxrl.core.config import ConfigError


def _layer_norm(norm: eqx.nn.LayerNorm, x: jax.Array) -> jax.Array:
    """`norm` applied to every row of x [seq_len, d]: (x - mean) / sqrt(var + eps) * weight + bias."""
    return _normalise(x, norm.weight, norm.bias, norm.eps)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _normalise(x: jax.Array, weight: jax.Array, bias: jax.Array, eps: float) -> jax.Array:
    return _normalise_forward(x, weight, bias, eps)[0]


def _normalise_forward(x, weight, bias, eps):
    centred = x - jnp.mean(x, axis=-1, keepdims=True)
    inv_std = jax.lax.rsqrt(jnp.mean(centred * centred, axis=-1, keepdims=True) + eps)
    normed = centred * inv_std
    return normed * weight + bias, (normed, inv_std, weight)


def _normalise_backward(eps, residuals, grad):
    """dx = inv_std * (g - mean(g) - normed * mean(g * normed)) with g = grad * weight, over the last axis."""
    del eps
    normed, inv_std, weight = residuals
    grad_normed = grad * weight
    grad_x = inv_std * (grad_normed - jnp.mean(grad_normed, axis=-1, keepdims=True)
                        - normed * jnp.mean(grad_normed * normed, axis=-1, keepdims=True))
    rows = tuple(range(grad.ndim - 1))
    return grad_x, jnp.sum(grad * normed, axis=rows), jnp.sum(grad, axis=rows)


_normalise.defvjp(_normalise_forward, _normalise_backward)


def _linear(layer: eqx.nn.Linear, x: jax.Array) -> jax.Array:
    """`layer` applied to every row of x [..., in_features]."""
    return x @ layer.weight.T + layer.bias


class EncoderBlock(eqx.Module):
    """Pre-LayerNorm block: x + attention(norm(x)), then x + GELU MLP(norm(x))."""

    attention_norm: eqx.nn.LayerNorm
    attention: eqx.nn.MultiheadAttention
    mlp_norm: eqx.nn.LayerNorm
    mlp_in: eqx.nn.Linear
    mlp_out: eqx.nn.Linear

    def __init__(self, d_model: int, num_heads: int, ffn_size: int, *, key: jax.Array):
        attention_key, in_key, out_key = jax.random.split(key, 3)
        self.attention_norm = eqx.nn.LayerNorm(d_model)
        self.attention = eqx.nn.MultiheadAttention(
            num_heads, d_model, use_query_bias=True, use_key_bias=True, use_value_bias=True, use_output_bias=True,
            key=attention_key)
        self.mlp_norm = eqx.nn.LayerNorm(d_model)
        self.mlp_in = eqx.nn.Linear(d_model, ffn_size, key=in_key)
        self.mlp_out = eqx.nn.Linear(ffn_size, d_model, key=out_key)

    def attend(self, x: jax.Array, causal: bool = False) -> jax.Array:
        """Multi-head self-attention of x [seq_len, d_model], as eqx.nn.MultiheadAttention computes it; `causal`:
        each position attends to itself and the positions before it only."""
        attention = self.attention
        seq_len = x.shape[0]
        heads = lambda layer: _linear(layer, x).reshape(seq_len, attention.num_heads, -1)
        query, key, value = heads(attention.query_proj), heads(attention.key_proj), heads(attention.value_proj)
        logits = jnp.einsum("qhd,khd->khq", query / math.sqrt(query.shape[-1]), key)  # key-major, see module doc
        if causal:
            later = jnp.arange(seq_len)[:, None] > jnp.arange(seq_len)[None, :]  # [key, query]: key after query
            logits = jnp.where(later[:, None, :], -jnp.inf, logits)
        weights = jax.nn.softmax(logits, axis=0)
        mixed = jnp.einsum("khq,khd->qhd", weights, value).reshape(seq_len, -1)
        return _linear(attention.output_proj, mixed)

    def __call__(self, x: jax.Array, causal: bool = False) -> jax.Array:
        """The block applied to a [seq_len, d_model] sequence."""
        x = x + self.attend(_layer_norm(self.attention_norm, x), causal)
        hidden = jax.nn.gelu(_linear(self.mlp_in, _layer_norm(self.mlp_norm, x)))  # tanh approximation
        return x + _linear(self.mlp_out, hidden)


class TransformerEncoder(eqx.Module):
    """Token + learned position embeddings, pre-LN blocks, final LayerNorm, per-token and mean-pooled heads;
    `causal` masks attention to later positions (GPT-2's decoder stack)."""

    token_embedding: eqx.nn.Embedding
    position_embedding: jax.Array
    blocks: tuple[EncoderBlock, ...]
    final_norm: eqx.nn.LayerNorm
    token_head: eqx.nn.Linear
    pooled_head: eqx.nn.Linear
    causal: bool = eqx.field(static=True)

    def __init__(self, vocab_size: int, seq_len: int, out_per_token: int, out_pooled: int, d_model: int = 64,
                 num_heads: int = 8, num_layers: int = 3, ffn_size: int | None = None, causal: bool = False, *,
                 key: jax.Array):
        if d_model % num_heads:
            raise ConfigError(f"d_model must be a multiple of num_heads, got d_model={d_model}, "
                              f"num_heads={num_heads}.")
        token_key, position_key, token_head_key, pooled_head_key, *block_keys = jax.random.split(key, 4 + num_layers)
        ffn_size = 4 * d_model if ffn_size is None else ffn_size
        self.token_embedding = eqx.nn.Embedding(vocab_size, d_model, key=token_key)
        self.position_embedding = jax.random.normal(position_key, (seq_len, d_model))
        self.blocks = tuple(EncoderBlock(d_model, num_heads, ffn_size, key=k) for k in block_keys)
        self.final_norm = eqx.nn.LayerNorm(d_model)
        self.token_head = eqx.nn.Linear(d_model, out_per_token, key=token_head_key)
        self.pooled_head = eqx.nn.Linear(d_model, out_pooled, key=pooled_head_key)
        self.causal = causal

    def features(self, tokens: jax.Array) -> jax.Array:
        """float [seq_len, d_model]: the final LayerNorm's output at every position."""
        x = self.token_embedding.weight[tokens] + self.position_embedding
        for block in self.blocks:
            x = block(x, self.causal)
        return _layer_norm(self.final_norm, x)

    def __call__(self, tokens: jax.Array) -> jax.Array:
        """float [seq_len * out_per_token + out_pooled]: per-token outputs, token-major, then pooled outputs."""
        x = self.features(tokens)
        per_token = _linear(self.token_head, x).reshape(-1)
        return jnp.concatenate([per_token, _linear(self.pooled_head, jnp.mean(x, axis=0))])
