"""The state-conditioned normalizing flow of CNF (Akimov et al. 2022, arXiv 2211.11096) over a dataset's actions.

Data -> latent, as in the official code (tinkoff-ai/cnf, `cnf/make_flow.py`): actions / max_action, clamped to
+-(1 - 2e-5) -> atanh -> `blocks` x [ActNorm -> invertible linear -> affine coupling] -> tanh, with a
Uniform(-1, 1)^d prior; the `normal` prior (the paper's ablation) drops the final tanh, as the official code does.
Odd action sizes get a zero dimension appended (the official loader pads hopper's three actions), so the coupling
halves are equal. Built from flowjax's `Chain`, `Scan`, `Invert` and `Tanh`; ActNorm, the free linear map and the
coupling are written here because flowjax's differ (see each class). Pre-training lives in `flow_training`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
from flowjax.bijections import AbstractBijection, Chain, Invert, Scan, Tanh

from fluxrl.core.config import check_choice, check_range

# The official loader clamps actions to +-(1 - 2e-5) and its tanh layers clamp to +-(1 - 1e-5), so atanh stays finite.
ACTION_CLAMP = 1.0 - 2e-5
TANH_CLAMP = 1.0 - 1e-5
# Flows of this many blocks or more run them as a lax.scan (one compiled body, as the paper's 12 blocks compile
# about as fast as 4 unrolled); fewer blocks compile faster, and run as fast, unrolled.
SCAN_FROM_BLOCKS = 8
PRELU_INIT = 0.25  # torch.nn.PReLU's default slope, one learnable slope per activation layer


@dataclass(frozen=True)
class FlowConfig:
    """The flow's shape and its maximum-likelihood pre-training (official `configs/run_flow.py` defaults)."""

    blocks: int = 12
    """[ActNorm, invertible linear, coupling] blocks."""
    hidden: int = 256
    """Units per hidden layer of each coupling's MLP."""
    depth: int = 2
    """Hidden layers of each coupling's MLP (the official `MLP(n_layers=3)` is 3 linear layers: 2 hidden)."""
    prior: str = "uniform"
    """Latent prior: `uniform` on (-1, 1)^d (CNF) or `normal` (the paper's ablation; no final tanh)."""
    lr: float = 5e-4
    """AdamW learning rate (> 0)."""
    weight_decay: float = 1e-4
    """AdamW decoupled weight decay (>= 0), applied to every parameter as torch's AdamW does."""
    batch_size: int = 1024
    """Actions per pre-training step."""
    grad_clip: float = 0.1
    """Global gradient-norm clip of a pre-training step (> 0)."""
    validation_fraction: float = 0.1
    """Share of the dataset held out to pick the best epoch, in (0, 1)."""
    epochs: int = 100
    """Pre-training epochs (official: 50 expert, 100 medium, 350 replay datasets: `paper_epochs`, which CNF's
    `paper` preset uses by dataset name)."""

    def __post_init__(self):
        for name in ("blocks", "hidden", "depth", "batch_size", "epochs"):
            check_range(name, getattr(self, name), 1)
        check_choice("prior", self.prior, ("uniform", "normal"))
        for name in ("lr", "grad_clip"):
            check_range(name, getattr(self, name), 0.0, low_open=True)
        check_range("weight_decay", self.weight_decay, 0.0)
        check_range("validation_fraction", self.validation_fraction, 0.0, 1.0, low_open=True, high_open=True)


PRESETS = {
    "paper": FlowConfig(),
    # A CPU-sized flow; its decode + gradient at batch 512 costs about a third of the paper's 12 x 256 flow's.
    "cpu": FlowConfig(blocks=4, hidden=128, epochs=30),
}


def paper_epochs(dataset_name: str) -> int:
    """The official pre-training epochs for a D4RL-style dataset name (cnf configs/run_flow.py:30-35): 50 when it
    names expert data (medium-expert too), else 350 replay, else 100."""
    if "expert" in dataset_name:
        return 50
    return 350 if "replay" in dataset_name else 100


class ActNorm(AbstractBijection):
    """z = exp(log_scale) x + translate (Glow's ActNorm, official `act_norm.py`); flowjax's `Affine` keeps its scale
    through a softplus, which would change what AdamW's weight decay pulls towards, so it is written here."""

    log_scale: jax.Array
    translate: jax.Array
    shape: tuple[int, ...]
    cond_shape: tuple[int, ...] | None = None

    @classmethod
    def from_data(cls, inputs: jax.Array) -> ActNorm:
        """The ActNorm that maps the batch `inputs` [B, d] to zero mean and unit (unbiased) std per dimension."""
        log_std = jnp.log(jnp.std(inputs, axis=0, ddof=1) + 1e-6)
        mean = jnp.mean(inputs, axis=0)
        return cls(-log_std, -mean * jnp.exp(-log_std), (inputs.shape[-1],))

    def transform_and_log_det(self, x, condition=None):
        return jnp.exp(self.log_scale) * x + self.translate, jnp.sum(self.log_scale)

    def inverse_and_log_det(self, y, condition=None):
        return (y - self.translate) * jnp.exp(-self.log_scale), -jnp.sum(self.log_scale)


class InvertibleLinear(AbstractBijection):
    """z = W x with a free d x d matrix, initialised orthogonal, log|det W| by slogdet (official
    `invertible_linear.py`); flowjax has only structured maps (Householder, triangular), not a free one."""

    weight: jax.Array
    shape: tuple[int, ...]
    cond_shape: tuple[int, ...] | None = None

    @staticmethod
    def orthogonal_weights(count: int, dim: int, key: jax.Array) -> jax.Array:
        """`count` random orthogonal d x d matrices: the Q of the QR decomposition of standard normal ones."""
        return jnp.linalg.qr(jax.random.normal(key, (count, dim, dim)))[0]

    def transform_and_log_det(self, x, condition=None):
        return self.weight @ x, jnp.linalg.slogdet(self.weight)[1]

    def inverse_and_log_det(self, y, condition=None):
        # inv(W) @ y, not solve(W, y): under vmap, solve would factorise W once per sample.
        return jnp.linalg.inv(self.weight) @ y, -jnp.linalg.slogdet(self.weight)[1]


class AffineCoupling(AbstractBijection):
    """RealNVP coupling (official `coupling_layer.py`): one half passes, the other becomes exp(s) x + t with
    (raw, t) = MLP([passing half, state]) and s = rescale * tanh(raw). flowjax's `Coupling` differs where it matters:
    its `Affine` scale is softplus(raw) (unbounded log-scale), its MLP has a fixed activation and a random output
    layer; here the log-scale is bounded by the learnable rescale, the activations are PReLU (learnable slope) and
    the output layer starts at zero, so every coupling starts as the identity."""

    weights: tuple[jax.Array, ...]  # [in, out] per layer
    biases: tuple[jax.Array, ...]
    slopes: tuple[jax.Array, ...]  # one PReLU slope per hidden layer
    rescale: jax.Array  # [d / 2]
    shape: tuple[int, ...]
    cond_shape: tuple[int, ...] | None
    swap: bool = eqx.field(static=True)  # True: the second half passes and the first is transformed

    def __init__(self, dim: int, cond_dim: int, hidden: int, depth: int, swap: bool, key: jax.Array):
        half = dim // 2
        sizes = [half + cond_dim] + [hidden] * depth
        # torch.nn.Linear's default initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases, in
        # one draw (each draw of a new shape is its own random-number program to compile).
        uniform = jax.random.uniform(key, (sum((fan_in + 1) * fan_out for fan_in, fan_out in zip(sizes, sizes[1:])),),
                                     minval=-1.0, maxval=1.0)
        weights, biases, start = [], [], 0
        for fan_in, fan_out in zip(sizes, sizes[1:]):
            layer = uniform[start:start + (fan_in + 1) * fan_out].reshape(fan_in + 1, fan_out) / math.sqrt(fan_in)
            weights.append(layer[:-1])
            biases.append(layer[-1])
            start += (fan_in + 1) * fan_out
        # The output layer starts at zero (official MLP `init_zeros`): every coupling starts as the identity.
        self.weights = (*weights, jnp.zeros((sizes[-1], dim)))
        self.biases = (*biases, jnp.zeros(dim))
        self.slopes = tuple(jnp.full((), PRELU_INIT, jnp.float32) for _ in range(depth))
        self.rescale = jnp.ones(half)
        self.shape, self.cond_shape, self.swap = (dim,), (cond_dim,), swap

    def _halves(self, x):
        half = self.shape[0] // 2
        first, second = x[:half], x[half:]
        return (second, first) if self.swap else (first, second)

    def _join(self, passing, changed):
        return jnp.concatenate([changed, passing] if self.swap else [passing, changed])

    def _scale_shift(self, passing, condition):
        out = jnp.concatenate([passing, condition])
        for weight, bias, slope in zip(self.weights[:-1], self.biases[:-1], self.slopes):
            out = out @ weight + bias
            out = jnp.where(out >= 0, out, slope * out)
        out = out @ self.weights[-1] + self.biases[-1]
        raw, shift = jnp.split(out, 2)
        return self.rescale * jnp.tanh(raw), shift

    def transform_and_log_det(self, x, condition=None):
        passing, changed = self._halves(x)
        log_scale, shift = self._scale_shift(passing, condition)
        return self._join(passing, jnp.exp(log_scale) * changed + shift), jnp.sum(log_scale)

    def inverse_and_log_det(self, y, condition=None):
        passing, changed = self._halves(y)
        log_scale, shift = self._scale_shift(passing, condition)
        return self._join(passing, (changed - shift) * jnp.exp(-log_scale)), -jnp.sum(log_scale)


def _flat(fn, inputs: jax.Array, observations: jax.Array):
    """fn over rows of [..., d] inputs and [..., obs] observations with the same leading shape."""
    lead = inputs.shape[:-1]
    outputs = jax.vmap(fn)(inputs.reshape(-1, inputs.shape[-1]), observations.reshape(-1, observations.shape[-1]))
    return jax.tree.map(lambda out: out.reshape(lead + out.shape[1:]), outputs)


class StateFlow(eqx.Module):
    """An action density given a (normalised) state, and a bijection between actions and a latent cube."""

    bijection: AbstractBijection  # scaled, padded actions in (-1, 1)^latent_dim -> latent
    action_dim: int = eqx.field(static=True)
    max_action: float = eqx.field(static=True)
    prior: str = eqx.field(static=True)

    @property
    def latent_dim(self) -> int:
        """Latent size: the action size rounded up to even."""
        return self.bijection.shape[0]

    def scaled_actions(self, actions: jax.Array) -> jax.Array:
        """Actions / max_action, zero-padded to `latent_dim`, clamped inside (-1, 1) (the flow's input)."""
        scaled = actions / self.max_action
        padding = [(0, 0)] * (actions.ndim - 1) + [(0, self.latent_dim - self.action_dim)]
        return jnp.clip(jnp.pad(scaled, padding), -ACTION_CLAMP, ACTION_CLAMP)

    def encode_and_log_det(self, actions: jax.Array, observations: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(latent [..., latent_dim], log|det d latent / d action| [...]) of actions given normalised states."""
        latent, log_det = _flat(self.bijection.transform_and_log_det, self.scaled_actions(actions), observations)
        return latent, log_det - self.action_dim * math.log(self.max_action)

    def encode(self, actions: jax.Array, observations: jax.Array) -> jax.Array:
        """The latent [..., latent_dim] of actions [..., action_dim] given normalised states."""
        return self.encode_and_log_det(actions, observations)[0]

    def decode(self, latent: jax.Array, observations: jax.Array) -> jax.Array:
        """Actions [..., action_dim] inside [-max_action, max_action] of latents [..., latent_dim] given states;
        a uniform-prior latent is clamped inside the open cube first, so +-1 decodes to a finite action."""
        if self.prior == "uniform":
            latent = jnp.clip(latent, -TANH_CLAMP, TANH_CLAMP)
        scaled = _flat(self.bijection.inverse, latent, observations)
        return self.max_action * jnp.clip(scaled[..., :self.action_dim], -TANH_CLAMP, TANH_CLAMP)

    def prior_log_prob(self, latent: jax.Array) -> jax.Array:
        """log density of the prior at latents [..., latent_dim]."""
        if self.prior == "uniform":
            return jnp.full(latent.shape[:-1], -self.latent_dim * math.log(2.0))
        return jnp.sum(-0.5 * latent ** 2 - 0.5 * math.log(2.0 * math.pi), axis=-1)

    def log_prob(self, actions: jax.Array, observations: jax.Array) -> jax.Array:
        """log density [...] of actions given normalised states, in action units (padding dimension included)."""
        latent, log_det = self.encode_and_log_det(actions, observations)
        return self.prior_log_prob(latent) + log_det

    def sample_latent(self, key: jax.Array, batch_shape: tuple[int, ...]) -> jax.Array:
        """Latents [*batch_shape, latent_dim] drawn from the prior."""
        shape = tuple(batch_shape) + (self.latent_dim,)
        if self.prior == "uniform":
            return jax.random.uniform(key, shape, minval=-1.0, maxval=1.0)
        return jax.random.normal(key, shape)

    def sample(self, key: jax.Array, observations: jax.Array) -> jax.Array:
        """One action per normalised state [..., obs_dim]: a prior latent, decoded."""
        return self.decode(self.sample_latent(key, observations.shape[:-1]), observations)


def _block(dim: int, cond_dim: int, config: FlowConfig, swap: bool, inputs: jax.Array, observations: jax.Array,
           linear_weight: jax.Array, key: jax.Array) -> tuple[Chain, jax.Array]:
    """One [ActNorm, linear, coupling] block, its ActNorm fitted to `inputs`, and the block's outputs."""
    block = Chain([ActNorm.from_data(inputs), InvertibleLinear(linear_weight, (dim,)),
                   AffineCoupling(dim, cond_dim, config.hidden, config.depth, swap, key)])
    return block, jax.vmap(block.transform)(inputs, observations)


def make_flow(config: FlowConfig, obs_dim: int, action_dim: int, max_action: float, key: jax.Array,
              actions: jax.Array, observations: jax.Array) -> StateFlow:
    """A fresh flow whose ActNorms are initialised on the batch (actions [B, action_dim], normalised states), each
    on what reaches it, as the official code does with its first training batch (B >= 2)."""
    check_range("max_action", max_action, 0.0, low_open=True)
    return _make_flow(config, obs_dim, action_dim, float(max_action), key, jnp.asarray(actions, jnp.float32),
                      jnp.asarray(observations, jnp.float32), SCAN_FROM_BLOCKS)


@eqx.filter_jit  # one compile per flow shape; run eagerly, every random draw of a new shape compiles on its own
def _make_flow(config, obs_dim, action_dim, max_action, key, actions, observations, scan_from_blocks) -> StateFlow:
    dim = action_dim + action_dim % 2
    shell = StateFlow(Tanh(shape=(dim,)), action_dim, max_action, config.prior)
    inputs = jnp.arctanh(shell.scaled_actions(actions))
    linear_key, coupling_key = jax.random.split(key)
    linear_weights = InvertibleLinear.orthogonal_weights(config.blocks, dim, linear_key)
    blocks = []
    for index, block_key in enumerate(jax.random.split(coupling_key, config.blocks)):
        # Official parity: block i couples with swapped halves when i is even.
        block, inputs = _block(dim, obs_dim, config, index % 2 == 0, inputs, observations, linear_weights[index],
                               block_key)
        blocks.append(block)
    layers = [Invert(Tanh(shape=(dim,)))]
    if config.blocks < scan_from_blocks:
        layers += blocks
    else:  # a scan over pairs of blocks (the pair keeps the alternation static), an odd last block apart
        pairs = [Chain(blocks[i:i + 2]) for i in range(0, config.blocks - 1, 2)]
        stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *[eqx.filter(pair, eqx.is_array) for pair in pairs])
        layers.append(Scan(eqx.combine(stacked, eqx.filter(pairs[0], eqx.is_array, inverse=True))))
        layers += blocks[len(pairs) * 2:]
    if config.prior == "uniform":
        layers.append(Tanh(shape=(dim,)))  # the uniform prior needs the latent squashed into the cube
    return StateFlow(Chain(layers), action_dim, max_action, config.prior)
