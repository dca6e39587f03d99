"""A bidirectional Transformer encoder over a fixed-length token sequence, with per-token and pooled heads."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from fluxrl.core.config import ConfigError


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

    def __call__(self, x: jax.Array) -> jax.Array:
        """The block applied to a [seq_len, d_model] sequence."""
        normed = jax.vmap(self.attention_norm)(x)
        x = x + self.attention(normed, normed, normed)
        hidden = jax.nn.gelu(jax.vmap(self.mlp_in)(jax.vmap(self.mlp_norm)(x)))
        return x + jax.vmap(self.mlp_out)(hidden)


class TransformerEncoder(eqx.Module):
    """Token + learned position embeddings, pre-LN blocks, final LayerNorm, per-token and mean-pooled heads."""

    token_embedding: eqx.nn.Embedding
    position_embedding: jax.Array
    blocks: tuple[EncoderBlock, ...]
    final_norm: eqx.nn.LayerNorm
    token_head: eqx.nn.Linear
    pooled_head: eqx.nn.Linear

    def __init__(self, vocab_size: int, seq_len: int, out_per_token: int, out_pooled: int, d_model: int = 64,
                 num_heads: int = 8, num_layers: int = 3, ffn_size: int | None = None, *, key: jax.Array):
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

    def __call__(self, tokens: jax.Array) -> jax.Array:
        """float [seq_len * out_per_token + out_pooled]: per-token outputs, token-major, then pooled outputs."""
        x = self.token_embedding.weight[tokens] + self.position_embedding
        for block in self.blocks:
            x = block(x)
        x = jax.vmap(self.final_norm)(x)
        per_token = jax.vmap(self.token_head)(x).reshape(-1)
        return jnp.concatenate([per_token, self.pooled_head(jnp.mean(x, axis=0))])
