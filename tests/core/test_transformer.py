"""The Transformer encoder: output layout, batching under jit, finite gradients."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxrl.core.config import ConfigError
from fluxrl.core.transformer import TransformerEncoder, _layer_norm

VOCAB, SEQ_LEN, OUT_PER_TOKEN, OUT_POOLED = 5, 4, 3, 2
MODEL = TransformerEncoder(VOCAB, SEQ_LEN, OUT_PER_TOKEN, OUT_POOLED, d_model=16, num_heads=4, num_layers=2,
                           key=jax.random.PRNGKey(0))
tokens_strategy = st.lists(st.integers(0, VOCAB - 1), min_size=SEQ_LEN, max_size=SEQ_LEN)


def _reference_call(model: TransformerEncoder, tokens: jax.Array) -> jax.Array:
    """The encoder built from equinox's own layers, applied per token: the definition the fast path must match."""
    x = model.token_embedding.weight[tokens] + model.position_embedding
    for block in model.blocks:
        normed = jax.vmap(block.attention_norm)(x)
        x = x + block.attention(normed, normed, normed)
        hidden = jax.nn.gelu(jax.vmap(block.mlp_in)(jax.vmap(block.mlp_norm)(x)))
        x = x + jax.vmap(block.mlp_out)(hidden)
    x = jax.vmap(model.final_norm)(x)
    per_token = jax.vmap(model.token_head)(x).reshape(-1)
    return jnp.concatenate([per_token, model.pooled_head(jnp.mean(x, axis=0))])


# Built once, so that hypothesis examples reuse one compiled program instead of compiling one each.
_batched_reference_call = eqx.filter_jit(jax.vmap(_reference_call, (None, 0)))


@eqx.filter_jit
def _call(model, tokens):
    return model(tokens)


@eqx.filter_jit
def _batched_call(model, tokens):
    return jax.vmap(model)(tokens)


@settings(max_examples=10, deadline=None)
@given(tokens=tokens_strategy, permutation=st.permutations(range(SEQ_LEN)))
def test_per_token_outputs_follow_their_token_and_pooled_outputs_ignore_the_order(tokens, permutation):
    # Move every token together with its position embedding: attention is permutation-equivariant and the
    # pooling a mean, so the per-token block of token i (outputs i * OUT_PER_TOKEN onwards) must move with it
    # and the pooled outputs (the last OUT_POOLED) must stay.
    tokens, permutation = jnp.asarray(tokens, jnp.int32), np.asarray(permutation)
    moved = eqx.tree_at(lambda m: m.position_embedding, MODEL, MODEL.position_embedding[permutation])
    out, moved_out = np.asarray(_call(MODEL, tokens)), np.asarray(_call(moved, tokens[permutation]))
    per_token = out[:-OUT_POOLED].reshape(SEQ_LEN, OUT_PER_TOKEN)
    np.testing.assert_allclose(moved_out[:-OUT_POOLED].reshape(SEQ_LEN, OUT_PER_TOKEN), per_token[permutation],
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(moved_out[-OUT_POOLED:], out[-OUT_POOLED:], rtol=1e-5, atol=1e-5)


def test_changing_one_token_changes_the_pooled_outputs_and_every_per_token_output():
    tokens = jnp.array([0, 1, 2, 3], jnp.int32)
    out = np.asarray(_call(MODEL, tokens)).astype(np.float64)
    changed = np.asarray(_call(MODEL, tokens.at[2].set(4))).astype(np.float64)
    assert out.shape == (SEQ_LEN * OUT_PER_TOKEN + OUT_POOLED,) and np.isfinite(out).all()
    per_token_change = np.abs(changed - out)[:-OUT_POOLED].reshape(SEQ_LEN, OUT_PER_TOKEN).max(axis=1)
    assert (per_token_change > 1e-4).all()  # attention carries the change to every position
    assert np.abs(changed - out)[-OUT_POOLED:].max() > 1e-4


def test_positions_are_told_apart_by_learned_position_embeddings():
    per_token = _call(MODEL, jnp.full(SEQ_LEN, 2, jnp.int32))[:-OUT_POOLED].reshape(SEQ_LEN, OUT_PER_TOKEN)
    assert len({row.tobytes() for row in np.asarray(per_token)}) == SEQ_LEN


@settings(max_examples=30, deadline=None)
@given(batch=st.lists(tokens_strategy, min_size=3, max_size=3))
def test_jitted_vmapped_call_equals_one_call_per_sequence(batch):
    tokens = jnp.asarray(batch, jnp.int32)
    expected = np.stack([np.asarray(_call(MODEL, t)) for t in tokens])
    np.testing.assert_allclose(_batched_call(MODEL, tokens), expected, rtol=1e-5, atol=1e-5)


@settings(max_examples=20, deadline=None)
@given(batch=st.lists(tokens_strategy, min_size=3, max_size=3))
def test_outputs_equal_the_encoder_built_from_equinox_layers(batch):
    tokens = jnp.asarray(batch, jnp.int32)
    expected = _batched_reference_call(MODEL, tokens)
    np.testing.assert_allclose(_batched_call(MODEL, tokens), expected, rtol=1e-5, atol=1e-5)


@eqx.filter_jit
def _gradient(model, tokens, targets, call=None):
    call = (lambda m, t: m(t)) if call is None else call
    return eqx.filter_grad(lambda m: jnp.mean((jax.vmap(lambda t: call(m, t))(tokens) - targets) ** 2))(model)


@settings(max_examples=10, deadline=None)
@given(batch=st.lists(tokens_strategy, min_size=2, max_size=2), seed=st.integers(0, 2**31 - 1))
def test_gradients_equal_those_of_the_encoder_built_from_equinox_layers(batch, seed):
    tokens = jnp.asarray(batch, jnp.int32)
    targets = jax.random.normal(jax.random.PRNGKey(seed), (2, SEQ_LEN * OUT_PER_TOKEN + OUT_POOLED))
    fast = jax.tree.leaves(eqx.filter(_gradient(MODEL, tokens, targets), eqx.is_array))
    reference = jax.tree.leaves(eqx.filter(_gradient(MODEL, tokens, targets, _reference_call), eqx.is_array))
    for got, want in zip(fast, reference):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_layer_norm_gradient_equals_equinox_layer_norm_gradient():
    keys = jax.random.split(jax.random.PRNGKey(3), 4)
    norm = eqx.nn.LayerNorm(16)
    norm = eqx.tree_at(lambda n: (n.weight, n.bias), norm,
                       (jax.random.normal(keys[0], (16,)), jax.random.normal(keys[1], (16,))))
    x = 3.0 * jax.random.normal(keys[2], (5, 16)) + 1.0
    cotangent = jax.random.normal(keys[3], (5, 16))
    loss = lambda norm_fn: lambda n, x: jnp.sum(norm_fn(n, x) * cotangent)
    fast = jax.grad(loss(_layer_norm), argnums=(0, 1))(norm, x)
    reference = jax.grad(loss(lambda n, x: jax.vmap(n)(x)), argnums=(0, 1))(norm, x)
    np.testing.assert_allclose(_layer_norm(norm, x), jax.vmap(norm)(x), rtol=1e-5, atol=1e-5)
    for got, want in zip(jax.tree.leaves(fast), jax.tree.leaves(reference)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(batch=st.lists(tokens_strategy, min_size=2, max_size=2), seed=st.integers(0, 2**31 - 1))
def test_gradients_are_finite_and_reach_every_parameter(batch, seed):
    tokens = jnp.asarray(batch, jnp.int32)
    targets = jax.random.normal(jax.random.PRNGKey(seed), (2, SEQ_LEN * OUT_PER_TOKEN + OUT_POOLED))
    grads = [np.asarray(g) for g in jax.tree.leaves(eqx.filter(_gradient(MODEL, tokens, targets), eqx.is_array))]
    assert all(np.all(np.isfinite(g)) for g in grads)
    assert all(np.any(g != 0) for g in grads)


def test_bit_sequence_sized_encoder_gives_one_output_per_slot_and_word_plus_a_log_flow():
    def build_and_call():
        model = TransformerEncoder(257, 15, 257, 1, key=jax.random.PRNGKey(1))
        return model(jnp.full(15, 256, jnp.int32))

    out = eqx.filter_eval_shape(build_and_call)  # shapes only: building the full model eagerly is slow on CPU
    assert out.shape == (15 * 257 + 1,) and out.dtype == jnp.float32


@settings(max_examples=5, deadline=None)
@given(batch=st.lists(tokens_strategy, min_size=3, max_size=3))
def test_default_ffn_is_four_times_d_model_and_another_ffn_size_is_computed_like_equinox_layers(batch):
    tokens = jnp.asarray(batch, jnp.int32)
    explicit = TransformerEncoder(VOCAB, SEQ_LEN, OUT_PER_TOKEN, OUT_POOLED, d_model=16, num_heads=4, num_layers=2,
                                  ffn_size=64, key=jax.random.PRNGKey(0))
    np.testing.assert_array_equal(_batched_call(explicit, tokens), _batched_call(MODEL, tokens))
    narrow = TransformerEncoder(VOCAB, SEQ_LEN, OUT_PER_TOKEN, OUT_POOLED, d_model=16, num_heads=4, num_layers=2,
                                ffn_size=24, key=jax.random.PRNGKey(0))
    expected = _batched_reference_call(narrow, tokens)
    np.testing.assert_allclose(_batched_call(narrow, tokens), expected, rtol=1e-5, atol=1e-5)
    assert not np.allclose(_batched_call(narrow, tokens), _batched_call(MODEL, tokens), atol=1e-3)


def test_d_model_not_divisible_by_num_heads_raises_a_config_error():
    with pytest.raises(ConfigError, match="^d_model must be a multiple of num_heads"):
        TransformerEncoder(VOCAB, SEQ_LEN, 1, 1, d_model=10, num_heads=4, key=jax.random.PRNGKey(0))


CAUSAL = TransformerEncoder(VOCAB, SEQ_LEN, OUT_PER_TOKEN, OUT_POOLED, d_model=16, num_heads=4, num_layers=2,
                            causal=True, key=jax.random.PRNGKey(1))


@given(tokens_strategy)
@settings(max_examples=10, deadline=None)
def test_causal_features_equal_equinox_attention_under_a_lower_triangular_mask(tokens):
    tokens = jnp.asarray(tokens)
    mask = jnp.tril(jnp.ones((SEQ_LEN, SEQ_LEN), bool))  # [query, key]: a query sees itself and earlier keys
    x = CAUSAL.token_embedding.weight[tokens] + CAUSAL.position_embedding
    for block in CAUSAL.blocks:
        normed = jax.vmap(block.attention_norm)(x)
        x = x + block.attention(normed, normed, normed, mask=mask)
        x = x + jax.vmap(block.mlp_out)(jax.nn.gelu(jax.vmap(block.mlp_in)(jax.vmap(block.mlp_norm)(x))))
    np.testing.assert_allclose(eqx.filter_jit(CAUSAL.features)(tokens), jax.vmap(CAUSAL.final_norm)(x),
                               rtol=1e-5, atol=1e-5)


def test_a_causal_position_ignores_every_later_token_and_sees_every_earlier_one():
    tokens = jnp.array([0, 1, 2, 3])
    base = CAUSAL.features(tokens)
    later = CAUSAL.features(tokens.at[3].set(4))
    np.testing.assert_array_equal(base[:3], later[:3])
    assert not np.allclose(base[3], later[3])
    earlier = CAUSAL.features(tokens.at[0].set(4))
    assert all(not np.allclose(base[i], earlier[i]) for i in range(SEQ_LEN))
