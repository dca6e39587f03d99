"""Maximum-likelihood pre-training of CNF's state-conditioned flow (official `cnf/train_flow.py`), a cache of
pre-trained flows, and a toy picture of what the flow learns.

Pre-training: a 90/10 train/validation split, ActNorms initialised on the first shuffled training batch, AdamW
after a global gradient-norm clip, one jitted `lax.scan` per epoch, and the flow of the epoch with the lowest
validation negative log-likelihood returned (the official code saves every epoch and picks by hand).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from fluxrl.core.progress import Progress
from fluxrl.offline.common import OfflineData
from fluxrl.offline.flows import PRESETS, FlowConfig, StateFlow, make_flow
from fluxrl.offline.model_cache import data_fingerprint, load_or_train, model_path

CACHE_FORMAT = 1  # bump when the flow's structure changes, so old cache files are not read as new ones


def _optimizer(config: FlowConfig) -> optax.GradientTransformation:
    """Global-norm clip, then AdamW (torch's defaults otherwise: betas 0.9 / 0.999, eps 1e-8)."""
    return optax.chain(optax.clip_by_global_norm(config.grad_clip),
                       optax.adamw(config.lr, weight_decay=config.weight_decay))


def _nll(params, static, actions, observations):
    return -jnp.mean(eqx.combine(params, static).log_prob(actions, observations))


@eqx.filter_jit
def _train_epoch(config: FlowConfig, flow: StateFlow, opt_state, actions, observations, key):
    """One pass over the training rows in shuffled minibatches (the remainder left out this epoch)."""
    params, static = eqx.partition(flow, eqx.is_inexact_array)
    batch = min(config.batch_size, actions.shape[0])
    steps = actions.shape[0] // batch
    rows = jax.random.permutation(key, actions.shape[0])[:steps * batch].reshape(steps, batch)

    def step(carry, batch_rows):
        params, opt_state = carry
        loss, grads = jax.value_and_grad(_nll)(params, static, actions[batch_rows], observations[batch_rows])
        updates, opt_state = _optimizer(config).update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), rows)
    return eqx.combine(params, static), opt_state, jnp.mean(losses)


@eqx.filter_jit
def mean_nll(flow: StateFlow, actions, observations, chunk: int = 1024):
    """Mean negative log-likelihood of actions given normalised states, over every row, `chunk` rows at a time."""
    count = actions.shape[0]
    padded = -(-count // chunk) * chunk
    pad = lambda x: jnp.pad(x, [(0, padded - count)] + [(0, 0)] * (x.ndim - 1))
    valid = (jnp.arange(padded) < count).reshape(-1, chunk)
    actions = pad(actions).reshape(-1, chunk, actions.shape[-1])
    observations = pad(observations).reshape(-1, chunk, observations.shape[-1])
    nll = jax.lax.map(lambda xs: -flow.log_prob(xs[0], xs[1]), (actions, observations))
    return jnp.sum(jnp.where(valid, nll, 0.0)) / count


def pretrain_flow(config: FlowConfig, observations, actions, max_action: float, key: jax.Array,
                  progress: bool = False) -> tuple[StateFlow, dict]:
    """(the flow of the best validation epoch, history) after maximum-likelihood training on (normalised states,
    actions); history holds per-epoch `train_nll` and `validation_nll`, `best_epoch` (an index into them),
    `best_validation_nll`, `validation_rows` (the held-out row indices) and `seconds`."""
    observations, actions = jnp.asarray(observations, jnp.float32), jnp.asarray(actions, jnp.float32)
    count = actions.shape[0]
    validation_count = max(1, int(round(config.validation_fraction * count)))
    if count - validation_count < 2:
        raise ValueError(f"Pre-training a flow needs at least 2 training rows; the dataset has {count} rows.")
    split_key, init_key, key = jax.random.split(key, 3)
    order = jax.random.permutation(split_key, count)
    train_rows, validation_rows = order[validation_count:], order[:validation_count]
    train_actions, train_observations = actions[train_rows], observations[train_rows]
    first = train_rows[:min(config.batch_size, train_rows.shape[0])]  # the first shuffled batch initialises
    flow = make_flow(config, observations.shape[-1], actions.shape[-1], max_action, init_key, actions[first],
                     observations[first])
    opt_state = _optimizer(config).init(eqx.filter(flow, eqx.is_inexact_array))
    history = {"train_nll": [], "validation_nll": [], "best_epoch": -1, "best_validation_nll": float("inf"),
               "validation_rows": np.asarray(validation_rows)}
    best = flow
    bar = Progress(progress, config.epochs, 0, ("train_nll", "validation_nll"), "actions")
    start = time.perf_counter()
    validation_actions, validation_observations = actions[validation_rows], observations[validation_rows]
    chunk = min(config.batch_size, validation_count)
    epoch_config = dataclasses.replace(config, epochs=1)  # runs that differ only in length share one compile
    try:
        for epoch, epoch_key in enumerate(jax.random.split(key, config.epochs)):
            flow, opt_state, train_nll = _train_epoch(epoch_config, flow, opt_state, train_actions,
                                                      train_observations, epoch_key)
            validation_nll = float(mean_nll(flow, validation_actions, validation_observations, chunk))
            history["train_nll"].append(float(train_nll))
            history["validation_nll"].append(validation_nll)
            if validation_nll < history["best_validation_nll"]:  # a NaN epoch is never the best
                history["best_epoch"], history["best_validation_nll"] = epoch, validation_nll
                best = flow  # arrays are immutable: keeping the reference is the checkpoint
            seconds = time.perf_counter() - start
            bar.advance(epoch + 1, (epoch + 1) * train_actions.shape[0] / seconds,
                        {"train_nll": float(train_nll), "validation_nll": validation_nll})
    finally:
        bar.close()
    history["seconds"] = time.perf_counter() - start
    if history["best_epoch"] < 0:
        raise FloatingPointError(f"Flow pre-training diverged: no epoch of {config.epochs} had a finite validation "
                                 "negative log-likelihood; lower lr or grad_clip.")
    return best, history


def cache_path(config: FlowConfig, data: OfflineData, dataset_id: str, cache_dir, seed: int = 0) -> Path:
    """The cache file of a pre-trained flow: named by the dataset id, a hash of what shapes it, and the seed."""
    fingerprint = {"format": CACHE_FORMAT, "config": dataclasses.asdict(config), "rows": int(data.actions.shape[0]),
                   **data_fingerprint(data)}
    return model_path(cache_dir, "flow-", dataset_id, fingerprint, seed)


def cached_flow(config: FlowConfig, data: OfflineData, dataset_id: str, cache_dir, seed: int = 0,
                progress: bool = False) -> StateFlow:
    """The flow pre-trained on `data` (normalised states, actions) with `seed`: read from `cache_dir` when a
    readable file for this dataset, config and seed is there, otherwise trained and saved (atomically) there with
    its training record beside it."""
    template = eqx.filter_eval_shape(make_flow, config, data.obs_dim, data.action_dim, data.max_action,
                                     jax.random.PRNGKey(0), data.actions[:2], data.observations[:2])

    def train():
        flow, history = pretrain_flow(config, data.observations, data.actions, data.max_action,
                                      jax.random.PRNGKey(seed), progress)
        record = {"dataset_id": dataset_id, "seed": seed, "config": dataclasses.asdict(config),
                  **{k: v for k, v in history.items() if k != "validation_rows"}}
        return flow, record

    return load_or_train(cache_path(config, data, dataset_id, cache_dir, seed), template, train)


TOY_CENTRES = np.array([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]], np.float32)
TOY_SHIFT, TOY_STD = 0.3, 0.06
# The `cpu` flow with small batches and a larger step: the toy allows a few hundred steps in seconds, where a
# D4RL-size dataset gives the paper's settings ~10^5.
TOY_CONFIG = dataclasses.replace(PRESETS["cpu"], batch_size=128, epochs=20, lr=2e-3)


def toy_centres(observations: np.ndarray) -> np.ndarray:
    """[N, 4, 2] cluster centres of the toy data at scalar states [N, 1]: the four corners shifted by 0.3 s."""
    shift = TOY_SHIFT * np.asarray(observations)[:, :1] * np.array([1.0, -1.0], np.float32)
    return TOY_CENTRES[None] + shift[:, None]


def toy_dataset(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(states [size, 1] ~ U(-1, 1), 2-D actions in [-1, 1]): a state-shifted mixture of 4 equal Gaussians."""
    rng = np.random.default_rng(seed)
    observations = rng.uniform(-1.0, 1.0, (size, 1)).astype(np.float32)
    cluster = rng.integers(0, 4, size)
    centres = toy_centres(observations)[np.arange(size), cluster]
    actions = np.clip(centres + TOY_STD * rng.normal(size=(size, 2)), -1.0, 1.0)
    return observations, actions.astype(np.float32)


_sample = eqx.filter_jit(lambda flow, key, observations: flow.sample(key, observations))


def plot_toy(path, flow: StateFlow | None = None, seed: int = 0, size: int = 4096) -> StateFlow:
    """Draw toy data next to the flow's samples at the same states into `path` (a PNG); trains the `cpu` preset
    (`TOY_CONFIG`) on the toy data when no flow is given. Returns the flow drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    observations, actions = toy_dataset(size, seed)
    if flow is None:
        flow, _ = pretrain_flow(TOY_CONFIG, observations, actions, 1.0, jax.random.PRNGKey(seed))
    samples = np.asarray(_sample(flow, jax.random.PRNGKey(seed + 1), jnp.asarray(observations)))
    figure, axes = plt.subplots(1, 2, figsize=(8, 4), sharex=True, sharey=True)
    for axis, points, title in ((axes[0], actions, "data"), (axes[1], samples, "flow samples")):
        scatter = axis.scatter(points[:, 0], points[:, 1], c=observations[:, 0], s=2, cmap="coolwarm",
                               vmin=-1, vmax=1)
        axis.set(title=title, xlim=(-1, 1), ylim=(-1, 1), xlabel="action 0", aspect="equal")
    axes[0].set_ylabel("action 1")
    figure.suptitle("A state-conditioned flow on 4 clusters that move with the state (colour)")
    figure.colorbar(scatter, ax=axes, label="state", shrink=0.8)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return flow
