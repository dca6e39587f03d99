"""fluxrl: flow-based reinforcement learning in JAX (GFlowNets, flow policies, normalizing-flow offline RL,
meta-gradients)."""


def load(run_dir, seed_index: int = 0):
    """The trained model of a run directory: `sample(key, n)` for a GFlowNet, `act(key, observation)` for a policy
    (see `fluxrl.trained`)."""
    from fluxrl.trained import load as load_run

    return load_run(run_dir, seed_index)
