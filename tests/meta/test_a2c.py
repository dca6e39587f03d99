"""A2C on Snake: the network's convolution, legal moves only, the inner gradient's construction, the runner contract
(plain A2C and the meta-gradient with its variance diagnostics), and the documented metric names."""

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fluxrl.core import runner
from fluxrl.meta import a2c, metagrad, network, snake

TINY = a2c.A2CConfig(num_envs=4, num_steps=3, updates_per_iteration=2, channels=4, policy_hidden=(8,),
                     value_hidden=(8,))
DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


@pytest.fixture(scope="module")
def tiny_state():
    return jax.jit(lambda key: a2c.init(TINY, None, key))(jax.random.PRNGKey(0))


def test_the_2x2_convolution_equals_xla_same_padding():
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 6, 6, 5))
    weight = jax.random.normal(jax.random.PRNGKey(1), (2, 2, 5, 7))

    @jax.jit
    def all_forms(x, weight):  # one program for every form: compiling is most of this test's time
        pairs = []
        # Even board at stride 2, small board at stride 1 (the two layers on 6 x 6), then the general form.
        for stride, inputs in ((2, x), (1, x[:, :3, :3]), (2, x[:, :5, :5]), (1, x)):
            expected = jax.lax.conv_general_dilated(inputs, weight, (stride, stride), "SAME",
                                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))
            pairs.append((network._conv2x2(inputs, weight, stride), expected))
        return pairs

    for got, expected in all_forms(x, weight):
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.slow
def test_rollouts_take_only_legal_moves_and_reset_finished_episodes(tiny_state):
    config = a2c.A2CConfig(**{**TINY.__dict__, "num_steps": 520})  # past the time limit
    batch, carry, ended = jax.jit(lambda s, k: a2c.collect(config, s.step.net, s.step.env, k))(
        tiny_state, jax.random.PRNGKey(1))
    legal = jnp.take_along_axis(batch.mask, batch.action[..., None], axis=-1)[..., 0]
    assert bool(jnp.all(legal | ~batch.mask.any(-1)))
    assert int(ended.count) == int(batch.done.sum())
    # After a reset the snake is one cell long: the body channel of the next observation has one cell.
    t, n = np.argwhere(np.asarray(batch.done))[0]
    following = batch.grid[t + 1, n] if t + 1 < config.num_steps else batch.last_grid[n]
    assert float(following[..., 0].sum()) == 1.0


@jax.jit
def synthetic_step() -> a2c.StepCarry:
    """A network, its RMSProp state and a random rollout of legal-looking data (no environment compiled)."""
    keys = jax.random.split(jax.random.PRNGKey(5), 6)
    t, n = TINY.num_steps, TINY.num_envs
    grid = jax.random.uniform(keys[0], (t, n, 6, 6, 5))
    batch = a2c.Batch(grid, jax.random.uniform(keys[1], (t, n, 4)) > 0.3,
                      jax.random.randint(keys[2], (t, n), 0, 4), jax.random.uniform(keys[3], (t, n)),
                      jax.random.uniform(keys[4], (t, n)) > 0.7, grid[-1])
    net = a2c.SnakeNet(TINY, keys[5])
    zero = a2c.Ended(jnp.float32(0.0), jnp.int32(0), jnp.int32(0))
    return a2c.StepCarry(net, a2c.make_optimizer(TINY).init(net), batch, None, zero)


@pytest.mark.slow
def test_inner_gradient_is_the_semi_gradient_of_the_a2c_loss(monkeypatch):
    logits = a2c.initial_logits(TINY)
    h = a2c.hyperparameters(TINY, logits)
    step = synthetic_step()
    batch = step.batch

    def direct_loss(net):
        # The textbook form: targets computed from the same network, gradients stopped through them.
        log_policy, values, next_values = a2c._forward(net, batch)
        discount = h["gamma"] * (1.0 - batch.done)
        returns = jax.lax.stop_gradient(a2c.lambda_returns(batch.reward, discount, next_values, h["lambda"]))
        advantage = returns - jax.lax.stop_gradient(values)
        return a2c._heads_loss(log_policy, values, batch, returns, advantage, h)[0]

    # The update is checked before the next rollout: inner_step with the environment left out.
    monkeypatch.setattr(a2c, "collect", lambda config, net, env, key: (batch, env, step.ended))

    @jax.jit
    def both(step):
        expected = a2c.make_optimizer(TINY).update(jax.grad(direct_loss)(step.net), step.opt_state, step.net)[0]
        new_step, _ = a2c.inner_step(TINY, logits, step, jax.random.PRNGKey(2))
        return expected, jax.tree.map(lambda new, old: new - old, new_step.net, step.net)

    expected, moved = both(step)
    for got, want in zip(jax.tree.leaves(moved), jax.tree.leaves(expected)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)


def test_hyperparameters_start_at_the_config_values():
    values = a2c.hyperparameters(TINY, a2c.initial_logits(TINY))
    expected = dict(gamma=TINY.gamma, policy=TINY.policy_coef, value=TINY.value_coef, entropy=TINY.entropy_coef)
    expected["lambda"] = TINY.gae_lambda
    for name, value in expected.items():
        assert np.isclose(float(values[name]), value, rtol=1e-6)


def _documented() -> set[str]:
    return set(re.findall(r"`([a-z_][a-z0-9_]*)`", DOCS.read_text()))


@pytest.mark.slow
@pytest.mark.parametrize("algorithm, config", [
    (a2c.ALGORITHM, TINY),
    (metagrad.ALGORITHM, metagrad.MetaConfig(a2c=TINY, inner_steps=2, mix="uniform", meta_params=("gamma", "lambda"),
                                             variance_samples=2)),
], ids=["a2c", "metagrad"])
def test_runs_in_the_runner_and_every_metric_is_documented(algorithm, config, tmp_path):
    result = runner.run(algorithm, config, runner.RunConfig(iterations=2, num_seeds=2, out=str(tmp_path / "run"),
                                                            log_every=1, eval_every=2, eval_at_start=False,
                                                            progress=False))
    summary = result.summary
    assert summary["env_steps"] == 2 * a2c.env_steps_per_iteration(TINY)
    assert summary["env_steps_per_second"] > 0
    if algorithm is metagrad.ALGORITHM:
        assert {"meta_grad_variance_kstep", "meta_grad_cosine_uniform", "meta_grad_bias_geometric"} <= set(summary)
        assert summary["gamma"] != pytest.approx(TINY.gamma, abs=1e-6)  # the meta-parameter moved
        assert summary["entropy_coef"] == pytest.approx(TINY.entropy_coef)  # a fixed one did not
    undefined = sorted(set(summary) - {"per_seed", "seeds"} - _documented())
    assert not undefined, f"metrics reported but not defined in docs/metrics.md: {undefined}"


@pytest.mark.slow
def test_random_play_counts_fruit():
    total = jax.jit(snake.random_play("snake-6x6", 8, 40))(jax.random.PRNGKey(0))
    assert 0 < float(total) <= 8 * 40
