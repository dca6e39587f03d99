"""GFlowNet policy networks and the per-state log-probability terms every loss is built from.

A policy maps an input (`policy_input`: the environment's observation, or what the policy reads of it) to its
outputs (forward logits [num_actions], backward logits [num_backward_actions], log state flow). `state_terms`
turns those into the three numbers a trajectory loss needs at one visited state: log P_F of the action taken
there, log P_B of the edge that led into it, and log F of the state.

A policy may also keep activations for its own gradient: `forward_cached(input) -> (outputs, activations)` and
`param_vjp(inputs, activations, out_cotangent)`, so the gradient pass back-propagates through the sampler's
forward pass instead of running a second one. Policies without them are re-run (`policy_param_vjp`).
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from fluxrl.core.nets import MLP, mlp
from fluxrl.envs.gflownet.base import DAGEnv, uniform_log_pb

# A finite stand-in for -inf: masked logits get it so that a state with no valid action gives a finite
# (and ignored) log-softmax instead of NaN.
MASKED_LOGIT = -1e9


class MLPPolicy(eqx.Module):
    """An MLP over a flat observation (or the positions of its ones, see `policy_input`) with forward, backward
    and log-flow heads."""

    net: MLP
    num_actions: int = eqx.field(static=True)
    num_backward_actions: int = eqx.field(static=True)

    def __init__(self, env: DAGEnv, width: int, depth: int, key: jax.Array):
        out = env.num_actions + env.num_backward_actions + 1
        self.net = mlp(env.obs_size, out, width, depth, key)
        self.num_actions = env.num_actions
        self.num_backward_actions = env.num_backward_actions

    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(forward logits, backward logits, log flow) for one input."""
        return self._heads(self.net(obs))

    def forward_cached(self, obs: jax.Array) -> tuple[tuple[jax.Array, jax.Array, jax.Array], tuple[jax.Array, ...]]:
        """(outputs, hidden activations) for one input."""
        out, hidden = self.net.forward_cached(obs)
        return self._heads(out), hidden

    def param_vjp(self, obs: jax.Array, hidden: tuple[jax.Array, ...], out_cotangent):
        """Sum over a batch (leading axis) of the VJP of the outputs w.r.t. the arrays, back-propagated through
        the batch's stored hidden activations."""
        tangent = lambda change: self._heads(self.net.linearized(change.net, obs, hidden))
        (grads,) = jax.linear_transpose(tangent, self)(out_cotangent)
        return grads

    def _heads(self, out: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        a, b = self.num_actions, self.num_backward_actions
        return out[..., :a], out[..., a:a + b], out[..., a + b]


class SlotTransformerPolicy(eqx.Module):
    """A transformer over slot tokens: per-slot forward logits (one per word) and a per-slot backward logit."""

    encoder: eqx.Module
    num_words: int = eqx.field(static=True)

    def __init__(self, env, d_model: int, num_heads: int, num_layers: int, key: jax.Array):
        from fluxrl.core.transformer import TransformerEncoder

        self.num_words = env.num_words
        self.encoder = TransformerEncoder(
            vocab_size=env.num_words + 1, seq_len=env.num_slots, out_per_token=env.num_words + 1,
            out_pooled=1, d_model=d_model, num_heads=num_heads, num_layers=num_layers, key=key)

    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(forward logits [slot * word], backward logits [slot], log flow) for one token sequence."""
        out = self.encoder(obs)
        per_slot = out[:-1].reshape(obs.shape[0], self.num_words + 1)
        return per_slot[:, :-1].reshape(-1), per_slot[:, -1], out[-1]


class PrefixTransformerPolicy(eqx.Module):
    """A causal (GPT-2 style) transformer over a sequence built left to right: a start token, then the sequence's
    tokens; every output is read at the last token, so a state's policy depends on its prefix only. The environment
    gives `vocab_size`, `max_tokens` and `tokens(state)` (int32 [max_tokens], -1 past the end)."""

    encoder: eqx.Module
    num_actions: int = eqx.field(static=True)
    num_backward_actions: int = eqx.field(static=True)
    vocab_size: int = eqx.field(static=True)

    def __init__(self, env, d_model: int, num_heads: int, num_layers: int, key: jax.Array):
        from fluxrl.core.transformer import TransformerEncoder

        self.num_actions, self.num_backward_actions = env.num_actions, env.num_backward_actions
        self.vocab_size = env.vocab_size
        self.encoder = TransformerEncoder(
            vocab_size=env.vocab_size + 2, seq_len=env.max_tokens + 1,
            out_per_token=env.num_actions + env.num_backward_actions + 1, out_pooled=0, d_model=d_model,
            num_heads=num_heads, num_layers=num_layers, causal=True, key=key)

    def __call__(self, tokens: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(forward logits, backward logits, log flow) for one token sequence (-1 past its end)."""
        start, pad = self.vocab_size, self.vocab_size + 1
        ids = jnp.concatenate([jnp.full(1, start, jnp.int32), jnp.where(tokens >= 0, tokens, pad)])
        last = jnp.sum(tokens >= 0)  # the start token sits at 0, so the last token is at the sequence's length
        features = self.encoder.features(ids)[last]
        out = features @ self.encoder.token_head.weight.T + self.encoder.token_head.bias
        a, b = self.num_actions, self.num_backward_actions
        return out[:a], out[a:a + b], out[a + b]


class TemperedPolicy(eqx.Module):
    """A policy whose forward logits are divided by a temperature: softmax(logits / temperature)."""

    inner: eqx.Module
    temperature: float = eqx.field(static=True)

    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(forward logits / temperature, backward logits, log flow) for one input."""
        forward_logits, backward_logits, log_flow = self.inner(obs)
        return forward_logits / self.temperature, backward_logits, log_flow


class StateTerms(NamedTuple):
    """Log-probability terms at one visited state; zero where the term does not exist."""

    log_pf: jax.Array  # log P_F(a_t | s_t) of the action taken at this state
    log_pb: jax.Array  # log P_B(s_{t-1} | s_t) of the edge that led into this state
    log_flow: jax.Array  # log F(s_t)


def policy_input(policy, env: DAGEnv, state):
    """What `policy` reads at `state`: the positions of the ones of the observation where the environment
    lists them (`obs_hot_indices`) and the policy is an MLP, the tokens for a prefix transformer, else the
    observation."""
    if isinstance(policy, TemperedPolicy):
        return policy_input(policy.inner, env, state)
    if isinstance(policy, PrefixTransformerPolicy):
        return env.tokens(state)
    if isinstance(policy, MLPPolicy) and hasattr(env, "obs_hot_indices"):
        return env.obs_hot_indices(state)
    return env.obs(state)


def policy_forward(policy, obs: jax.Array):
    """(outputs, activations) for one input; a policy without `forward_cached` keeps no activations."""
    if hasattr(policy, "forward_cached"):
        return policy.forward_cached(obs)
    return policy(obs), ()


def policy_param_vjp(policy_params, policy_static, inputs: jax.Array, activations, out_cotangent):
    """Sum over a batch of the VJP of the policy's outputs w.r.t. its arrays, from the activations that
    `policy_forward` kept at these inputs (a policy without `param_vjp` is run again)."""
    policy = eqx.combine(policy_params, policy_static)
    if hasattr(policy, "param_vjp"):
        return policy.param_vjp(inputs, activations, out_cotangent)
    _, vjp = jax.vjp(lambda params: jax.vmap(eqx.combine(params, policy_static))(inputs), policy_params)
    return vjp(out_cotangent)[0]


def log_probs_from_outputs(env: DAGEnv, state, outputs) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(log P_F over all actions, log P_B over all backward actions, log F) from the policy's outputs at one
    state, masks applied."""
    forward_logits, backward_logits, log_flow = outputs
    log_pf = jax.nn.log_softmax(jnp.where(env.forward_mask(state), forward_logits, MASKED_LOGIT))
    log_pb = jax.nn.log_softmax(jnp.where(env.backward_mask(state), backward_logits, MASKED_LOGIT))
    return log_pf, log_pb, log_flow


def forward_log_probs(policy, env: DAGEnv, state) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(log P_F over all actions, log P_B over all backward actions, log F) at one state, masks applied."""
    return log_probs_from_outputs(env, state, policy(policy_input(policy, env, state)))


def terms_at(env: DAGEnv, uniform_pb: bool, state, log_pf_all: jax.Array, log_pb_all: jax.Array,
             log_flow: jax.Array, action: jax.Array, prev_backward_action: jax.Array) -> StateTerms:
    """Pick the loss terms at one state from its log-probabilities (action < 0: none taken there;
    prev_backward_action < 0: the edge into it has P_B = 1 or does not exist)."""
    log_pf = jnp.where(action >= 0, log_pf_all[jnp.maximum(action, 0)], 0.0)
    if uniform_pb:
        log_pb = uniform_log_pb(env, state)
    else:
        log_pb = log_pb_all[jnp.maximum(prev_backward_action, 0)]
    log_pb = jnp.where(prev_backward_action >= 0, log_pb, 0.0)
    return StateTerms(log_pf, log_pb, log_flow)


def terms_from_outputs(env: DAGEnv, uniform_pb: bool, state, outputs, action: jax.Array,
                       prev_backward_action: jax.Array) -> StateTerms:
    """The loss terms at one state from the policy's outputs there."""
    return terms_at(env, uniform_pb, state, *log_probs_from_outputs(env, state, outputs), action,
                    prev_backward_action)


def state_terms(policy, env: DAGEnv, uniform_pb: bool, state, action: jax.Array,
                prev_backward_action: jax.Array) -> StateTerms:
    """The loss terms at one state, computed by `policy`."""
    outputs = policy(policy_input(policy, env, state))
    return terms_from_outputs(env, uniform_pb, state, outputs, action, prev_backward_action)
