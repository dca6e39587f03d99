"""A2C on Snake: the network's convolution, legal moves only, the inner gradient's construction, the runner contract
(plain A2C and the meta-gradient with its variance diagnostics), and the documented metric names."""

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fluxrl.core import runner
from fluxrl.envs.jumanji import snake
from fluxrl.meta import a2c, metagrad, network

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
                                             variance_samples=2, reference_samples=2)),
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


def _float64(tree):
    """Every floating leaf of a pytree in float64 (integer and boolean leaves unchanged)."""
    return jax.tree.map(lambda x: x.astype(jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


FD_CONFIG = a2c.A2CConfig(num_envs=3, num_steps=3, channels=4, policy_hidden=(8,), value_hidden=(8,))


@jax.jit
def fixed_rollouts(key):
    """A network, its RMSProp state and three consecutive rollouts of the real environment (float32)."""
    state = a2c.init_state(FD_CONFIG, key)
    batches, env = [state.step.batch], state.step.env
    for rollout_key in jax.random.split(key, 2):
        batch, env, _ = a2c.collect(FD_CONFIG, state.step.net, env, rollout_key)
        batches.append(batch)
    return state.step.net, state.step.opt_state, jax.tree.map(lambda *b: jnp.stack(b), *batches), state.logits


def _taken_log_policy_and_advantage(net, batch):
    """log pi(a|s) of the rollout's actions and the outer loss's advantage G^{1,1} - v(s), by hand."""
    log_policy, values, next_values = a2c._forward(net, batch)
    taken = jnp.take_along_axis(log_policy, batch.action[..., None], axis=-1)[..., 0]
    returns = a2c.lambda_returns(batch.reward, 1.0 - batch.done.astype(values.dtype), next_values, 1.0)
    return taken, returns - values


# 20 s each: with -m slow (the quadratic toy's finite-difference tests guard the K-step machinery by default).
@pytest.mark.slow
@pytest.mark.parametrize("steps, mix", [(1, "none"), pytest.param(2, "none", marks=pytest.mark.slow),
                                        pytest.param(2, "uniform", marks=pytest.mark.slow)])
def test_a2c_meta_gradient_in_every_logit_equals_finite_differences_in_float64(steps, mix):
    net, opt_state, batches, logits = fixed_rollouts(jax.random.PRNGKey(3))
    with jax.enable_x64(True):
        # The real inner update (a2c.update_network: the targets' path in gamma and lambda kept) on fixed rollouts:
        # the rollouts carry no gradient in the real unroll either (collected with the network's gradient stopped).
        net, opt_state, batches = _float64(net), _float64(opt_state), _float64(batches)
        eta0 = logits.astype(jnp.float64) + jnp.array([0.3, -0.2, 0.1, -0.1, 0.2])  # away from the defaults
        batch_at = lambda index: jax.tree.map(lambda b: b[index], batches)  # noqa: E731

        def step(eta, carry, key):
            net, opt_state, index = carry
            net, opt_state, loss_before, metrics = a2c.update_network(FD_CONFIG, eta, net, opt_state,
                                                                      batch_at(index))
            return (net, opt_state, index + 1), (loss_before, metrics)

        def final_loss(carry):
            return a2c.outer_loss(carry[0], batch_at(carry[2]))

        carry, keys = (net, opt_state, jnp.int32(0)), jax.random.split(jax.random.PRNGKey(0), steps)
        weights = metagrad.mixing_weights(mix, steps).astype(jnp.float64)
        reverse, forward, losses = jax.jit(lambda eta: [
            *(metagrad.meta_gradient(step, final_loss, eta, carry, keys, weights, directions=directions)[0]
              for directions in (None, jnp.eye(5, dtype=jnp.float64))),
            metagrad.unrolled_losses(step, final_loss, eta, carry, keys)[0]])(eta0)

        def networks(eta):  # theta_1 .. theta_K by plain calls of the same update
            nets, state = [net], opt_state
            for index in range(steps):
                updated, state, _, _ = a2c.update_network(FD_CONFIG, eta, nets[-1], state, batch_at(index))
                nets.append(updated)
            return nets[1:]

        # The outer loss's advantages are constants of its gradient (a policy gradient): frozen at eta0 here.
        frozen = [_taken_log_policy_and_advantage(n, batch_at(k))[1] for k, n in enumerate(networks(eta0), 1)]

        @jax.jit
        def objective(eta):
            return sum(w * -jnp.mean(_taken_log_policy_and_advantage(n, batch_at(k))[0] * advantage)
                       for k, (w, n, advantage) in enumerate(zip(weights, networks(eta), frozen), 1))

        eps = 1e-5
        numeric = np.array([(objective(eta0 + eps * e) - objective(eta0 - eps * e)) / (2 * eps)
                            for e in jnp.eye(5, dtype=jnp.float64)])
        assert float(objective(eta0)) == pytest.approx(float(jnp.dot(weights, losses)), rel=1e-12)
    assert reverse.dtype == jnp.float64
    scale = np.abs(numeric).max()
    assert scale > 0 and np.abs(numeric[:2]).min() > 1e-3 * scale  # gamma and lambda both matter here
    np.testing.assert_allclose(reverse, numeric, rtol=1e-5, atol=1e-7 * scale)
    np.testing.assert_allclose(forward, numeric, rtol=1e-5, atol=1e-7 * scale)
