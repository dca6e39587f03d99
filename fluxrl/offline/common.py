"""What BC, TD3+BC, IQL and AWAC share: the dataset as device arrays, minibatches, MLPs, soft target updates, and
host-side evaluation of a policy in the dataset's Gymnasium environment.

The dataset reaches every algorithm as the runner's read-only `data` (`OfflineData`): its arrays are program
arguments shared by every seed, never in a checkpoint; how to evaluate (make the environment, score a return) rides
along as a static, host-only field, so nothing about the environment enters the traced config.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from fluxrl.core.nets import MLP, mlp
from fluxrl.envs.control.gymnasium_adapter import EpisodeRunner
from fluxrl.offline.datasets import Dataset
from fluxrl.offline.specs import DatasetError
from fluxrl.offline.preprocessing import reward_transform, state_normalizer

class Evaluation:
    """How to evaluate a policy on the host: the environment's factory, episodes per evaluation, the score.

    Compared by identity, so it can be a static field of `OfflineData` (one run, one object)."""

    def __init__(self, make_env: Callable[[], Any], episodes: int = 10,
                 normalized_score: Callable[[float], float] | None = None):
        self.runner = EpisodeRunner(make_env, episodes)
        self.normalized_score = normalized_score

    def __call__(self, policy: Callable[[np.ndarray], np.ndarray], seed: int) -> dict[str, float]:
        """{"return": mean episode return, "normalized_score": its score} of `policy` from episodes seeded `seed`."""
        return self.score(self.runner.run(policy, seed))

    def score(self, returns: np.ndarray) -> dict[str, float]:
        """{"return": the mean of episode returns, "normalized_score": its score where reference returns exist}."""
        mean_return = float(np.mean(returns))
        metrics = {"return": mean_return}
        if self.normalized_score is not None:
            metrics["normalized_score"] = float(self.normalized_score(mean_return))
        return metrics


class HeldOutEvaluation:
    """Evaluation without an environment: the policy's mean squared action error on held-out transitions.

    Compared by identity, as `Evaluation` is; used when the data names no environment (`--env none`)."""

    def __init__(self, observations: np.ndarray, actions: np.ndarray):
        self.observations, self.actions = np.asarray(observations, np.float32), np.asarray(actions, np.float32)

    def __call__(self, policy: Callable[[np.ndarray], np.ndarray], seed: int) -> dict[str, float]:
        """{"heldout_action_error": mean over held-out rows of the squared distance to the dataset's action}."""
        del seed  # every held-out row is scored once; a policy's own noise comes from its keys
        error = np.sum((np.asarray(policy(self.observations)) - self.actions) ** 2, axis=-1)
        return {"heldout_action_error": float(np.mean(error))}


def hold_out(dataset: Dataset, share: float = 0.1) -> tuple[Dataset, Dataset]:
    """(training, held-out) split of `dataset`: the held-out part is its last `share` of rows, starting after an
    episode's end where one lies in the last half of the data (so few episodes are cut in two)."""
    rows = len(dataset.rewards)
    if rows < 2:
        raise DatasetError(f"a dataset of {rows} transition(s) cannot hold out data for offline metrics.")
    cut = min(rows - 1, max(1, int(round(rows * (1 - share)))))
    ends = np.flatnonzero(np.maximum(dataset.terminals, dataset.timeouts)[rows // 2:cut]) + rows // 2 + 1
    cut = int(ends[-1]) if len(ends) else cut
    return (Dataset(*(np.asarray(a)[:cut] for a in dataset)), Dataset(*(np.asarray(a)[cut:] for a in dataset)))


class OfflineData(eqx.Module):
    """The runner's shared `data` of an offline run: transitions (observations already normalised) as arrays."""

    observations: jax.Array  # [N, obs_dim], normalised with obs_mean / obs_std
    actions: jax.Array  # [N, action_dim]
    rewards: jax.Array  # [N], after the algorithm's reward convention
    next_observations: jax.Array  # [N, obs_dim], normalised
    dones: jax.Array  # [N], 1.0 at a true terminal (no bootstrap); time-limit cuts still bootstrap, as in CORL
    obs_mean: jax.Array  # [obs_dim]; the environment's observations are normalised with these at evaluation
    obs_std: jax.Array  # [obs_dim]
    max_action: float = eqx.field(static=True, default=1.0)  # actions lie in [-max_action, max_action]
    evaluation: Evaluation | HeldOutEvaluation | None = eqx.field(static=True, default=None)

    @property
    def obs_dim(self) -> int:
        """Observation size."""
        return self.observations.shape[-1]

    @property
    def action_dim(self) -> int:
        """Action size."""
        return self.actions.shape[-1]


class Batch(NamedTuple):
    """A minibatch of transitions."""

    observations: jax.Array
    actions: jax.Array
    rewards: jax.Array
    next_observations: jax.Array
    dones: jax.Array


def make_offline_data(dataset: Dataset, *, normalize_states: bool = True, max_action: float = 1.0,
                      evaluation: Evaluation | None = None) -> OfflineData:
    """The shared `data` of a run from a dataset whose rewards already follow the algorithm's convention;
    observations normalised by the dataset's mean and std (+ 1e-3) unless `normalize_states` is off."""
    obs_dim = dataset.observations.shape[-1]
    if normalize_states:
        mean, std = state_normalizer(dataset)
    else:
        mean, std = np.zeros(obs_dim, np.float32), np.ones(obs_dim, np.float32)
    as_float = lambda x: np.asarray(x, np.float32)
    return OfflineData(
        observations=as_float((dataset.observations - mean) / std), actions=as_float(dataset.actions),
        rewards=as_float(dataset.rewards), next_observations=as_float((dataset.next_observations - mean) / std),
        dones=as_float(dataset.terminals), obs_mean=as_float(mean), obs_std=as_float(std),
        max_action=float(max_action), evaluation=evaluation)


def load_offline_data(name_or_path: str, algorithm: str, data_dir: str | None = None, eval_episodes: int = 10,
                      normalize_states: bool = True, env: str | None = None) -> OfflineData:
    """Load a named or file dataset, apply `algorithm`'s reward convention, and attach its environment's
    evaluation (the mean return, and the D4RL-normalised score where reference returns are known); what `fluxrl
    train offline` and the reproductions train on. `env` names the environment when the data does not (a
    Gymnasium id, a dataset name, or "none": no environment; the last tenth of the data held out, and the
    policy's action error on it reported as `heldout_action_error`)."""
    from functools import partial

    from fluxrl.offline import datasets

    dataset, spec = datasets.load(name_or_path, data_dir, env)
    dataset = reward_transform(spec, dataset, algorithm)
    if not spec.has_env:
        # No environment to score a policy: train on 90% of the rows, report the action error on the rest.
        max_action = float(max(abs(spec.action_low), abs(spec.action_high)))
        dataset, held_out = hold_out(dataset)
        return make_offline_data(dataset, normalize_states=normalize_states, max_action=max_action,
                                 evaluation=HeldOutEvaluation(held_out.observations, held_out.actions))
    make_env = partial(datasets.make_env, spec)
    probe = make_env()
    max_action = float(np.max(np.abs(np.asarray(probe.action_space.high))))
    probe.close()
    score = partial(datasets.normalized_score, spec) if spec.has_reference else None
    evaluation = Evaluation(make_env, eval_episodes, score)
    return make_offline_data(dataset, normalize_states=normalize_states, max_action=max_action,
                             evaluation=evaluation)


def sample_batch(data: OfflineData, key: jax.Array, batch_size: int) -> Batch:
    """`batch_size` transitions drawn uniformly with replacement (as CORL's replay buffer does)."""
    rows = jax.random.randint(key, (batch_size,), 0, data.rewards.shape[0])
    return Batch(data.observations[rows], data.actions[rows], data.rewards[rows], data.next_observations[rows],
                 data.dones[rows])


def network(in_size: int, out_size: int, width: int, depth: int, key: jax.Array) -> MLP:
    """A ReLU MLP with `depth` hidden layers of `width` units (fluxrl.core.nets)."""
    return mlp(in_size, out_size, width, depth, key)


def soft_update(target: Any, online: Any, tau: float) -> Any:
    """Polyak averaging: target <- (1 - tau) target + tau online, leaf by leaf."""
    return jax.tree.map(lambda t, o: (1.0 - tau) * t + tau * o, target, online)


def critic_input(observations: jax.Array, actions: jax.Array) -> jax.Array:
    """[observation, action] rows, the input of a Q-network."""
    return jnp.concatenate([observations, actions], axis=-1)


def min_q(critics: tuple, observations: jax.Array, actions: jax.Array) -> jax.Array:
    """min_i Q_i(s, a) over twin critics, one value per row (the clipped double-Q of TD3, AWAC, CNF)."""
    inputs = critic_input(observations, actions)
    return jnp.minimum(*(q(inputs)[:, 0] for q in critics))


def eval_seed(key: Any) -> int:
    """An integer seed for the evaluation episodes, derived from the runner's evaluation key."""
    words = np.asarray(key).ravel().tolist()  # a raw uint32 key, as the runner hands it over
    return int(np.random.SeedSequence(words).generate_state(1)[0])


def evaluate_policy(data: Any, act: Callable[[np.ndarray, jax.Array], Any], key: Any) -> dict[str, float]:
    """The data's evaluation (episodes in its environment, or the held-out action error) of a policy
    `act(normalised observations [n, O], action key)`; the action keys follow from the runner's evaluation `key`;
    {} when the data has no evaluation. `data` is `OfflineData` or a wrapper with its obs_mean / obs_std."""
    if data.evaluation is None:
        return {}
    mean, std = np.asarray(data.obs_mean), np.asarray(data.obs_std)
    seed = eval_seed(key)
    keys = [jax.random.PRNGKey(seed)]

    def policy(observations: np.ndarray) -> np.ndarray:
        normalised = ((np.asarray(observations, np.float32) - mean) / std).astype(np.float32)
        keys[0], action_key = jax.random.split(keys[0])
        return np.asarray(act(normalised, action_key))

    return data.evaluation(policy, seed)


def host_evaluator(act: Callable[[Any, Any, jax.Array, float], jax.Array]) -> Callable:
    """`evaluate_host(config, data, state, key)` for a deterministic policy `act(config, state.actor, observations,
    max_action)` giving the evaluation action of a batch of normalised observations; run jitted on the host."""
    jitted = jax.jit(act, static_argnums=(0, 3))

    def evaluate_host(config: Any, data: OfflineData, state: Any, key: Any) -> dict[str, float]:
        """Mean return and normalised score of the policy over the evaluation's episodes; {} without one."""
        actor = jax.device_get(state.actor)  # a host copy: the seed's arrays live where it trained
        return evaluate_policy(data, lambda observations, _: jitted(config, actor, observations, data.max_action),
                               key)

    return evaluate_host


def apply_gradients(optimizer: Any, params: Any, opt_state: Any, grads: Any) -> tuple[Any, Any]:
    """(params, opt_state) after one optax step along `grads`."""
    import optax

    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def gaussian_log_prob(mean: jax.Array, log_std: jax.Array, actions: jax.Array) -> jax.Array:
    """log N(actions; mean, exp(log_std)^2) summed over the action dimensions (a diagonal Gaussian)."""
    z = (actions - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z ** 2 - log_std - 0.5 * jnp.log(2.0 * jnp.pi), axis=-1)


def expectile_loss(diff: jax.Array, expectile: float) -> jax.Array:
    """mean(|expectile - 1[diff < 0]| diff^2), the asymmetric L2 loss of IQL (Kostrikov et al. 2022, eq. 5)."""
    weight = jnp.where(diff < 0, 1.0 - expectile, expectile)
    return jnp.mean(weight * diff ** 2)
