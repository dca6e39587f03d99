"""Shared fixtures: tiny configs that compile fast."""

import pytest

from fluxrl.core.runner import RunConfig
from fluxrl.envs.gflownet.configs import HypergridConfig
from fluxrl.gflownet.balance import BalanceConfig
from fluxrl.gflownet.networks import MLPConfig


@pytest.fixture
def tiny_config():
    """A TB GFlowNet (`fluxrl.gflownet.balance.ALGORITHM`) on a 2x5 hypergrid with a small MLP."""
    return BalanceConfig(env=HypergridConfig(ndim=2, height=5), network=MLPConfig(hidden=16), batch_size=8)


@pytest.fixture
def tiny_run(tmp_path):
    """A short run of 40 iterations with rows every 10 and checkpoints every 20."""
    return RunConfig(iterations=40, num_seeds=2, out=str(tmp_path / "run"), log_every=10, eval_every=20,
                     checkpoint_every=20, progress=False)


def pytest_configure(config):
    """Share compiled programs between tests: many tests compile the same tiny configs."""
    import tempfile

    import jax

    from fluxrl.core.devices import use_every_core

    use_every_core()  # one CPU device per core, as a run or the command line sets it
    jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="fluxrl-test-jax-cache-"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


# Checks that also run with `-m slow`, kept out of the default run so that it stays under five minutes on two
# cores: each is the costliest of a kind that cheaper default tests still cover (measured 6-16 s each).
SLOW_BY_COST = (
    "tests/gflownet/test_lggfn.py::test_main_model_trains_on_auxiliary_trajectories_with_its_own_log_probs[tb-lggfn]",
    "tests/gflownet/test_lggfn.py::test_exploring_gflownet_learns_the_target[lggfn]",
    "tests/gflownet/test_lggfn.py::test_rnd_novelty_falls_where_the_predictor_trains",
    "tests/gflownet/test_lggfn.py::test_replay_buffer_keeps_the_latest_trajectories_and_samples_only_stored_ones",
    "tests/gflownet/test_gradients.py::test_sampler_terms_equal_terms_rescored_by_the_same_policy",
    "tests/gflownet/test_balance.py::test_every_loss_learns_a_small_hypergrid[subtb]",
    "tests/gflownet/test_soft_rl.py::test_leaf_coefficient_weights_only_transitions_into_terminal_objects",
    "tests/gflownet/test_soft_rl.py::test_importance_weights_scale_the_loss",
    "tests/gflownet/test_soft_rl.py::test_soft_rl_gflownet_learns_the_target[0.0]",
    "tests/gflownet/test_soft_protocol_options.py::test_a_summed_log_z_vector_moves_log_z_size_times_as_far_per_adam_step",
    "tests/gflownet/test_soft_protocol_options.py::test_td_insertion_stores_each_transitions_own_priority_and_max_insertion_the_largest_seen",
    "tests/gflownet/test_soft_protocol_options.py::test_importance_weights_shrink_the_loss_only_when_beta_is_positive[1.0-True]",
    "tests/gflownet/test_empirical.py::test_training_fills_the_window_with_the_sampled_objects_and_evaluation_reports_it[algorithm0-config0]",
    "tests/gflownet/test_resume.py::test_a_killed_and_resumed_run_equals_an_uninterrupted_one[mdqn]",
    "tests/gflownet/test_exact_metrics_jit.py::test_jitted_metrics_equal_host_metrics_on_hypergrids",
    "tests/gflownet/test_metrics.py::test_exact_distribution_agrees_with_100k_fresh_samples_on_small_bit_sequences",
    "tests/test_metric_names.py::test_every_offline_metric_is_defined_in_the_docs[cnf]",
    "tests/test_metric_names.py::test_every_offline_metric_is_defined_in_the_docs[plas]",
    "tests/test_metric_names.py::test_every_reported_metric_is_defined_in_the_docs[sagfn]",
    "tests/test_metric_names.py::test_every_reported_metric_is_defined_in_the_docs[structure]",
    "tests/test_metric_names.py::test_every_offline_metric_is_defined_in_the_docs[awac]",
    "tests/gflownet/test_empirical.py::test_training_fills_the_window_with_the_sampled_objects_and_evaluation_reports_it[algorithm1-config1]",
    "tests/gflownet/test_soft_protocol_options.py::test_importance_weights_shrink_the_loss_only_when_beta_is_positive[0.0-False]",
    "tests/gflownet/test_soft_rl.py::test_target_network_moves_by_polyak_towards_the_online_network_each_iteration",
    "tests/offline/test_flows.py::test_an_overfitting_run_returns_an_earlier_epoch",
    "tests/gflownet/test_gradients.py::test_packed_gradient_equals_autodiff_of_rescored_loss[learned-tb]",
    "tests/core/test_devices_env.py::test_three_seeds_get_three_devices_and_the_same_numbers_as_two_devices_with_a_padding_seed",
    "tests/gflownet/test_gradients.py::test_packed_gradient_equals_autodiff_of_rescored_loss[learned-db]",
    "tests/test_resume_families.py::test_offline_td3bc_resumes_to_the_uninterrupted_run",
    "tests/test_metric_names.py::test_every_onpolicy_metric_is_defined_in_the_docs[fpo]",
    "tests/test_metric_names.py::test_every_reported_metric_is_defined_in_the_docs[lggfn]",
    "tests/test_metric_names.py::test_every_offline_metric_is_defined_in_the_docs[td3bc]",
    "tests/test_cli_commands.py::test_resume_extends_a_run_to_the_new_iterations",
    "tests/offline/test_flows.py::test_cached_flow_reuses_its_file_and_replaces_a_corrupt_one",
    "tests/gflownet/test_modes.py::test_indexed_modes_found_equals_the_distinct_modes_sampled",
    "tests/gflownet/test_prioritized_replay.py::test_vmapped_seeds_match_separate_runs_inside_scan",
)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Mark the SLOW_BY_COST checks slow before `-m` selects."""
    for item in items:
        if item.nodeid in SLOW_BY_COST:
            item.add_marker(pytest.mark.slow)
