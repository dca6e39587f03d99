"""Use what a run trained: `fluxrl.load(run_dir)` rebuilds the run's config and one seed's state from its checkpoint.

    trained = fluxrl.load("runs/hypergrid")            # a GFlowNet run
    samples = trained.sample(jax.random.PRNGKey(0), 1000)   # terminal objects, log R, log P_F of their trajectory
    trained = fluxrl.load("runs/onpolicy")             # an on-policy, offline or meta-gradient run
    action = trained.act(jax.random.PRNGKey(0), observation)

`sample` and `act` are pure functions of their arguments (jit them, vmap `act` over keys). Runs written before
config.json held the typed config cannot be loaded; run them again.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fluxrl.core.config import ConfigError

class Samples(NamedTuple):
    """Terminal objects of a trained GFlowNet: the environment's states [n, ...], log R [n], and log P_F of the
    trajectory that built each one [n] (its log-probability under the sampler where each object has one
    trajectory, as in sequences built left to right; a lower bound on it otherwise)."""

    objects: Any
    log_reward: jax.Array
    log_prob: jax.Array


@dataclasses.dataclass(frozen=True)
class TrainedGFlowNet:
    """A trained GFlowNet: its config, the environment, and the forward policy of one seed."""

    config: Any
    env: Any
    env_params: Any
    policy: Any
    iteration: int

    def sample(self, key: jax.Array, n: int) -> Samples:
        """`n` objects sampled from the trained forward policy (no exploration noise)."""
        return _sample(self.policy, self.env, self.env_params, key, n)


@dataclasses.dataclass(frozen=True)
class TrainedPolicy:
    """A trained policy: its config, one seed's state, and `act(key, observation)` for raw observations [..., O]."""

    config: Any
    state: Any
    data: Any
    family: str
    iteration: int

    def act(self, key: jax.Array, observation: Any) -> jax.Array:
        """Actions for raw observations [O] or [n, O], as the run's evaluation takes them; for meta-gradient runs,
        moves (int32) for Snake observations: Jumanji's `Observation` or its grid [rows, cols, 5], one or a batch."""
        if self.family == "meta":
            return _act_meta(self, key, observation)
        single = jnp.ndim(observation) == 1
        batch = jnp.atleast_2d(jnp.asarray(observation, jnp.float32))
        action = _ACT[self.family](self, key, batch)
        return action[0] if single else action

    def evaluate(self, episodes: int = 10, seed: int = 0, max_steps: int = 1000) -> dict[str, Any]:
        """Returns of `episodes` episodes of the policy from seed `seed`: their mean, and each one (offline: in
        the dataset's evaluation environment, with its normalised score, or the held-out action error of a run
        without one; on-policy: in the run's environment, each episode up to its end or `max_steps` steps)."""
        if self.family == "offline":
            from fluxrl.offline.common import Evaluation

            evaluation = self.data.evaluation
            act = jax.jit(self.act)
            keys = iter(jax.random.split(jax.random.PRNGKey(seed), 100_000))
            policy = lambda observations: np.asarray(act(next(keys), observations))
            if not isinstance(evaluation, Evaluation):  # no environment: the held-out action error
                return evaluation(policy, seed)
            fresh = Evaluation(evaluation.runner.make_env, episodes, evaluation.normalized_score)
            returns = fresh.runner.run(policy, seed)
            return {**fresh.score(returns), "returns": [float(r) for r in returns]}
        episodes_of = _meta_returns if self.family == "meta" else _onpolicy_returns
        returns = episodes_of(self, jax.random.PRNGKey(seed), episodes, max_steps)
        return {"return": float(np.mean(returns)), "returns": [float(r) for r in returns]}


def load(run_dir: str | Path, seed_index: int = 0) -> TrainedGFlowNet | TrainedPolicy:
    """The trained model of seed `seed_index` (0 .. num_seeds - 1) of the run in `run_dir`."""
    from fluxrl.core import checkpoint
    from fluxrl.core.config import from_typed
    from fluxrl.core.rundir import read_run

    stored = read_run(str(run_dir))
    if "typed_config" not in stored:
        raise ConfigError(f"{run_dir} was written before runs stored their typed config; train it again to load it.")
    config = from_typed(stored["typed_config"])
    command = from_typed(stored["command"]) if "command" in stored else None
    num_seeds = int(stored["run"]["num_seeds"])
    if not 0 <= seed_index < num_seeds:
        raise ConfigError(f"seed_index must be in 0..{num_seeds - 1}, got {seed_index}.")
    algorithm, family = _algorithm(stored["algorithm"])
    data = _data(family, algorithm, config, command)
    keys = jnp.stack([jax.random.PRNGKey(i) for i in range(num_seeds)])
    template = jax.eval_shape(jax.vmap(lambda key: algorithm.init(config, data, key)), keys)
    try:
        states, iteration, _ = checkpoint.load(Path(run_dir), template)
    except checkpoint.CheckpointMismatch as error:
        raise ConfigError(f"{run_dir}: the checkpoint does not match its config ({error}).") from None
    state = jax.tree.map(lambda leaf: jnp.asarray(leaf[seed_index]), states)
    if family == "gflownet":
        module = _module(stored["algorithm"])
        return TrainedGFlowNet(config, config.env.build()[0], data.env_params, module.policy_of(config, state),
                               iteration)
    return TrainedPolicy(config, state, data, family, iteration)


def _module(name: str):
    """The module of an algorithm name, as stored in config.json."""
    import importlib

    modules = {"bc": "offline.bc", "td3bc": "offline.td3bc", "iql": "offline.iql", "awac": "offline.awac",
               "cnf": "offline.cnf", "plas": "offline.plas", "ppo": "onpolicy.ppo", "fpo": "onpolicy.fpo",
               "a2c": "meta.a2c", "metagrad": "meta.metagrad"}
    from fluxrl.gflownet.algorithms import ALGORITHMS

    if name in ALGORITHMS:
        return importlib.import_module(ALGORITHMS[name].init.__module__)
    if name not in modules:
        raise ConfigError(f"cannot load a {name!r} run: no such algorithm in fluxrl.")
    return importlib.import_module(f"fluxrl.{modules[name]}")


def _algorithm(name: str):
    """(the runner's Algorithm, its family) of a stored algorithm name."""
    module = _module(name)
    return module.ALGORITHM, module.__name__.split(".")[1]


def _data(family: str, algorithm, config, command):
    """The run's shared data: rebuilt from the config, or for offline runs from the dataset its command names."""
    if family != "offline":
        return None if algorithm.make_data is None else algorithm.make_data(config)
    if command is None:
        raise ConfigError("an offline run loads through the command that trained it, and this run has none stored "
                          "(it was trained from Python); rebuild its data and call the algorithm's act directly.")
    from fluxrl.commands.train_offline import load_data

    # The decoder comes from the cache it was pre-trained into; quietly, as a library call.
    return load_data(command, algorithm, config, verbose=False)


def _sample(policy, env, env_params, key: jax.Array, n: int) -> Samples:
    from fluxrl.gflownet.sampler import sample_trajectories

    trajectories, terms = sample_trajectories(policy, env, env_params, key, n, uniform_pb=True)
    return Samples(trajectories.final_states, trajectories.log_reward, jnp.sum(terms.log_pf, axis=1))


def _act_onpolicy(trained: TrainedPolicy, key: jax.Array, observation: jax.Array) -> jax.Array:
    from fluxrl.onpolicy import fpo, normalization, ppo

    config, state = trained.config, trained.state
    normalised = normalization.normalize(state.obs_stats if config.normalize_observations else None, observation)
    sample = fpo.sample(config) if isinstance(config, fpo.FPOConfig) else ppo.sample
    return sample(state.actor)(normalised, key)[0]


def _act_offline(trained: TrainedPolicy, key: jax.Array, observation: jax.Array) -> jax.Array:
    from fluxrl.commands.train_offline import algorithm_module

    config, state, data = trained.config, trained.state, trained.data
    offline = getattr(data, "offline", data)  # latent methods wrap the dataset with their decoder
    normalised = (observation - offline.obs_mean) / offline.obs_std
    module = algorithm_module(config)
    if module.ALGORITHM.name == "cnf":
        return module.act(config, state.actor, data.decoder, normalised, key)
    if module.ALGORITHM.name == "plas":
        return module.act(config, state.actor, data.decoder, normalised)
    return module.act(config, state.actor, normalised, offline.max_action)


_ACT = {"onpolicy": _act_onpolicy, "offline": _act_offline}


def _act_meta(trained: TrainedPolicy, key: jax.Array, observation: Any) -> jax.Array:
    """Moves of the A2C network (meta-gradient and A2C runs) for Snake observations, illegal moves masked."""
    from fluxrl.meta.network import masked_log_policy

    grid = jnp.asarray(getattr(observation, "grid", observation), jnp.float32)
    single = grid.ndim == 3
    grid = grid[None] if single else grid
    mask = getattr(observation, "action_mask", None)
    mask = jnp.ones((grid.shape[0], 4), bool) if mask is None else jnp.asarray(mask, bool).reshape(-1, 4)
    log_policy = masked_log_policy(trained.state.step.net.logits(grid), mask)
    action = jax.random.categorical(key, log_policy).astype(jnp.int32)
    return action[0] if single else action


def _meta_returns(trained: TrainedPolicy, key: jax.Array, episodes: int, max_steps: int) -> np.ndarray:
    """The return of the first episode of each of `episodes` Snake boards played side by side."""
    from fluxrl.envs.jumanji import snake

    config = trained.config
    env = snake.Snake(config.env if hasattr(config, "env") else config.a2c.env)

    def step(carry, step_key):
        observation, state = carry
        out = snake.step_batch(env, step_key, state, _act_meta(trained, step_key, observation))
        return (out.observation, out.state), out.reward, out.terminated | out.truncated

    return _first_episode_returns(lambda reset_key: snake.reset_batch(env, reset_key, episodes), step, key, episodes,
                                  max_steps)


def _onpolicy_returns(trained: TrainedPolicy, key: jax.Array, episodes: int, max_steps: int) -> np.ndarray:
    """The return of the first episode of each of `episodes` environments of the run run side by side."""
    from fluxrl.onpolicy.rollout import make_env

    env = make_env(trained.config.env)
    params = trained.data

    def reset(reset_key):
        return jax.vmap(env.reset, (0, None))(jax.random.split(reset_key, episodes), params)

    def step(carry, step_key):
        observation, state = carry
        act_key, env_key = jax.random.split(step_key)
        action = trained.act(act_key, observation)
        out = jax.vmap(env.step, (0, 0, 0, None))(jax.random.split(env_key, episodes), state, action, params)
        return (out.observation, out.state), out.reward, out.terminated | out.truncated

    return _first_episode_returns(reset, step, key, episodes, max_steps)


def _first_episode_returns(reset, step, key: jax.Array, episodes: int, max_steps: int) -> np.ndarray:
    """The summed reward of each environment up to its first episode's end (or `max_steps` steps), for a batch made
    by `reset(key)` and stepped by `step(batch, key) -> (batch, reward [episodes], done [episodes])`; steps after an
    end, which the environments reset, are not counted."""
    @jax.jit
    def run(key):
        reset_key, key = jax.random.split(key)

        def body(carry, step_key):
            batch, total, running = carry
            batch, reward, done = step(batch, step_key)
            return (batch, total + jnp.where(running, reward, 0.0), running & ~done), None

        carry = (reset(reset_key), jnp.zeros(episodes), jnp.ones(episodes, bool))
        (_, total, _), _ = jax.lax.scan(body, carry, jax.random.split(key, max_steps))
        return total

    return np.asarray(run(key))


def save_samples(samples: Samples, path: str | Path) -> Path:
    """Write samples to .npz (every leaf of the objects, log_reward, log_prob) or .csv (one row per object)."""
    path = Path(path)
    leaves = {f"object_{name}": np.asarray(leaf) for name, leaf in _named_leaves(samples.objects)}
    columns = {**leaves, "log_reward": np.asarray(samples.log_reward), "log_prob": np.asarray(samples.log_prob)}
    if path.suffix == ".npz":
        import io

        from fluxrl.core.checkpoint import atomic_write_bytes

        buffer = io.BytesIO()
        np.savez(buffer, **columns)
        atomic_write_bytes(path, buffer.getvalue())
        return path
    if path.suffix != ".csv":
        raise ConfigError(f"--out must end in .csv or .npz, got {path.name}.")
    header, cells = [], []
    for name, values in columns.items():
        flat = values.reshape(values.shape[0], -1)
        header += [name] if flat.shape[1] == 1 else [f"{name}_{i}" for i in range(flat.shape[1])]
        cells.append(flat)
    rows = np.concatenate([c.astype(np.float64) for c in cells], axis=1)
    text = ",".join(header) + "\n" + "\n".join(",".join(f"{v:.9g}" for v in row) for row in rows) + "\n"
    from fluxrl.core.checkpoint import atomic_write_bytes

    atomic_write_bytes(path, text.encode())
    return path


def _named_leaves(tree: Any) -> list[tuple[str, Any]]:
    """(field name, leaf) of a NamedTuple state (e.g. tokens, length), else leaf_i."""
    if hasattr(tree, "_fields"):
        return [(name, getattr(tree, name)) for name in tree._fields]
    return [(f"leaf_{i}", leaf) for i, leaf in enumerate(jax.tree.leaves(tree))]
