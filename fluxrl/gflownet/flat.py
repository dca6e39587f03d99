"""The flat GFlowNet options of earlier fluxrl versions, turned into an algorithm and its nested config.

Reproductions (whose studies are flat dicts), benchmarks and the command line speak in these flat names:
`from_flat(env="hypergrid", height=64, loss="mdqn", ...)` returns (soft_dqn.ALGORITHM, SoftDQNConfig(...)).
An option that does not apply to the chosen environment, loss or exploration is refused when it differs from
its default, so no flag is silently ignored.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from fluxrl.core.config import ConfigError, check_choice
from fluxrl.envs.gflownet.configs import BitSequenceConfig, HypergridConfig, ParenthesesConfig, StructureConfig
from fluxrl.gflownet import balance, soft_dqn
from fluxrl.gflownet.lggfn import LGGFNConfig
from fluxrl.gflownet.networks import MLPConfig, TransformerConfig
from fluxrl.gflownet.sagfn import SAGFNConfig
from fluxrl.gflownet.teacher import TeacherConfig
from fluxrl.gflownet.trajectory_replay import ReplayConfig

ENVS = ("hypergrid", "bitseq", "parentheses", "structure")
LOSSES = ("tb", "db", "subtb", "sdqn", "mdqn")
EXPLORE = ("none", "epsilon", "replay", "lggfn", "teacher", "sagfn")


@dataclass(frozen=True)
class FlatConfig:
    """Every GFlowNet option in one flat namespace (validated by `build`)."""

    env: str = "hypergrid"
    """Environment: hypergrid, bitseq, parentheses (balanced parentheses) or structure (DAG structure learning)."""
    ndim: int = 2
    """Hypergrid: number of dimensions D."""
    height: int = 8
    """Hypergrid: side length H (>= 2)."""
    reward: str = "standard"
    """Hypergrid reward preset: standard (R0=1e-3, R1=0.5, R2=2) or hard (R0=1e-4, R1=1, R2=3)."""
    r0: float | None = None
    """Hypergrid: override the preset's R0 (> 0)."""
    r1: float | None = None
    """Hypergrid: override the preset's R1 (>= 0)."""
    r2: float | None = None
    """Hypergrid: override the preset's R2 (>= 0)."""
    n: int = 120
    """Bit sequences: length in bits."""
    k: int = 8
    """Bit sequences: bits per word (one action fills one k-bit slot)."""
    num_modes: int = 60
    """Bit sequences: number of modes."""
    beta: float = 2.0
    """Bit sequences: log R(x) = -beta * (Hamming distance to the nearest mode)."""
    mode_seed: int = 0
    """Bit sequences: seed of the mode set and of the test set."""
    max_tokens: int = 32
    """Parentheses: maximum sequence length in tokens."""
    num_nodes: int = 5
    """Structure learning: variables (nodes) of the DAG; exact metrics up to 5."""
    num_samples: int = 100
    """Structure learning: observations in the seeded linear-Gaussian dataset."""
    graph_seed: int = 0
    """Structure learning: seed of the ground-truth graph and its data."""
    edge_weights: str = "ones"
    """Structure learning: ground-truth edge weights: ones (the official sampler's), normal or signed_uniform."""
    noise_std: float = 0.1
    """Structure learning: standard deviation of the observation noise."""
    score_reference: str = "best"
    """Structure learning: BGe log R relative to best (each node's best parent set), empty, or none (raw)."""
    unique_mode_samples: int = 16_000
    """Parentheses: samples of the trained policy behind unique_modes_sampled (0: skip)."""
    loss: str = "tb"
    """Training loss: tb, db, subtb, or soft-RL training: sdqn (soft DQN) or mdqn (Munchausen DQN)."""
    subtb_lambda: float = 0.9
    """SubTB: weight lambda^(j-i) of a sub-trajectory of j-i transitions (> 0)."""
    backward_policy: str = "learned"
    """Backward policy P_B: learned or uniform (sdqn / mdqn always use the uniform one)."""
    batch_size: int = 16
    """Trajectories per iteration."""
    lr: float = 1e-3
    """Adam learning rate of the policy network."""
    log_z_lr: float = 0.1
    """Adam learning rate of log Z (TB, and any auxiliary GFlowNet)."""
    network: str = "auto"
    """Policy network: auto (transformer on bitseq, else mlp), mlp, or transformer (bitseq, parentheses)."""
    hidden: int = 256
    """MLP policy: units per hidden layer."""
    layers: int = 2
    """MLP policy: number of hidden layers."""
    d_model: int = 64
    """Transformer policy: model width."""
    heads: int = 8
    """Transformer policy: attention heads."""
    transformer_layers: int = 3
    """Transformer policy: encoder layers."""
    epsilon: float = 0.0
    """Sampling: probability mass mixed in uniformly over valid actions, in [0, 1]."""
    temperature: float = 1.0
    """Sampling: softmax(logits / temperature) (> 0)."""
    explore: str = "none"
    """Exploration: none, epsilon (needs --epsilon > 0), replay, lggfn, teacher or sagfn."""
    aux_fraction: float = 0.5
    """replay / lggfn / teacher / sagfn: fraction of the batch from the buffer or the auxiliary GFlowNet."""
    aux_lambda: float = 1.0
    """lggfn / teacher (--lambda): weight lambda of the main model's loss in the auxiliary reward (> 0)."""
    replay_capacity: int = 1000
    """replay: trajectories kept in the buffer (>= batch_size)."""
    sagfn_beta_e: float = 1.0
    """sagfn: weight of log R in the auxiliary reward."""
    sagfn_beta_i: float = 1.0
    """sagfn: weight of the log RND novelty in the auxiliary reward."""
    sagfn_beta_sn: float = 1.0
    """sagfn: overall scale of the auxiliary log-reward."""
    rnd_lr: float = 1e-3
    """sagfn: Adam learning rate of the RND predictor."""
    munchausen_alpha: float = 0.15
    """mdqn: weight alpha of the Munchausen term, in [0, 1)."""
    munchausen_l0: float | None = None
    """mdqn: lower clip l0 of tau * log pi (< 0); default -100, -25 on bit sequences."""
    leaf_coefficient: float = 1.0
    """sdqn / mdqn: weight of the TD errors of transitions into a terminal object."""
    target_polyak: float = 0.25
    """sdqn / mdqn: target network update rate, in (0, 1]; 1 is a hard copy."""
    target_every: int = 1
    """sdqn / mdqn: iterations between target network updates."""
    replay_batch_size: int = 256
    """sdqn / mdqn: transitions replayed per iteration."""
    per_capacity: int = 100_000
    """sdqn / mdqn: transitions kept in the prioritised replay buffer."""
    per_alpha: float = 0.5
    """sdqn / mdqn: priority exponent alpha (0 = uniform replay)."""
    per_beta: float = 0.0
    """sdqn / mdqn: importance-sampling exponent beta at the start."""
    per_beta_final: float = 1.0
    """sdqn / mdqn: importance-sampling exponent beta after per_beta_iterations."""
    per_beta_iterations: int = 10_000
    """sdqn / mdqn: iterations over which beta is annealed."""
    per_importance_weights: bool = True
    """sdqn / mdqn: weight replayed TD errors by their importance weights (the official hypergrid code does not)."""
    per_insert: str = "max"
    """sdqn / mdqn: priority of new transitions: max (largest seen) or td (their own, official hypergrid code)."""
    per_priority: str = "abs"
    """sdqn / mdqn: priority of a transition: abs (|TD error|) or huber (its leaf-weighted Huber loss, official)."""
    q_head: str = "dueling"
    """sdqn / mdqn: Q-network head: dueling (the molecule setting) or plain (official hypergrid, bit sequences)."""
    learning_starts: int = 0
    """sdqn / mdqn: iterations that only collect transitions before the first gradient step."""
    log_z_size: int = 1
    """tb: elements of the log Z parameter, summed (Tiapkin et al.'s bit sequences: 64)."""
    weight_decay: float = 0.0
    """L2 coefficient added to every gradient before Adam (Tiapkin et al.'s bit sequences: 1e-5)."""
    empirical_window: int = 0
    """Enumerable envs: last sampled terminal objects kept for empirical_l1 (0: off; Tiapkin et al.: 200,000)."""
    grad_chunk_rows: int = 256
    """tb / db / subtb: visited states per chunk of the gradient pass (no effect on results)."""
    test_backward_samples: int = 10
    """Bit sequences: backward trajectories per test sequence in the log p estimate."""
    test_set_size: int = 7200
    """Bit sequences: test sequences used for the Spearman correlation."""


DEFAULTS = FlatConfig()
ENV_OPTIONS = {
    "hypergrid": ("ndim", "height", "reward", "r0", "r1", "r2"),
    "bitseq": ("n", "k", "num_modes", "beta", "mode_seed", "test_set_size", "test_backward_samples"),
    "parentheses": ("max_tokens", "unique_mode_samples"),
    "structure": ("num_nodes", "num_samples", "graph_seed", "edge_weights", "noise_std", "score_reference"),
}
ENV_TYPES = {"hypergrid": HypergridConfig, "bitseq": BitSequenceConfig, "parentheses": ParenthesesConfig,
             "structure": StructureConfig}
MLP_OPTIONS = {"hidden": "hidden", "layers": "layers"}
TRANSFORMER_OPTIONS = {"d_model": "d_model", "heads": "heads", "transformer_layers": "layers"}
SAMPLING = ("batch_size", "lr", "epsilon", "temperature", "weight_decay")
BALANCE_OPTIONS = ("subtb_lambda", "backward_policy", "log_z_lr", "grad_chunk_rows", "empirical_window",
                   "log_z_size")
SOFT_RL_OPTIONS = {"leaf_coefficient": "leaf_coefficient", "target_polyak": "target_polyak",
                   "target_every": "target_every", "replay_batch_size": "replay_batch_size",
                   "per_capacity": "per_capacity", "per_alpha": "per_alpha", "per_beta": "per_beta",
                   "per_beta_final": "per_beta_final", "per_beta_iterations": "per_beta_iterations",
                   "munchausen_alpha": "munchausen_alpha", "munchausen_l0": "l0",
                   "per_importance_weights": "per_importance_weights", "per_insert": "per_insert",
                   "per_priority": "per_priority", "q_head": "q_head", "learning_starts": "learning_starts",
                   "empirical_window": "empirical_window"}
EXPLORE_OPTIONS = {  # flat name -> field, per strategy
    "replay": (ReplayConfig, {"aux_fraction": "aux_fraction", "replay_capacity": "capacity"}),
    "lggfn": (LGGFNConfig, {"aux_fraction": "aux_fraction", "aux_lambda": "lam"}),
    "teacher": (TeacherConfig, {"aux_fraction": "aux_fraction", "aux_lambda": "loss_exponent"}),
    "sagfn": (SAGFNConfig, {"aux_fraction": "aux_fraction", "sagfn_beta_e": "beta_e", "sagfn_beta_i": "beta_i",
                            "sagfn_beta_sn": "beta_sn", "rnd_lr": "rnd_lr"}),
}


def from_flat(**options):
    """(algorithm, nested config) from flat option names and values; ConfigError for a bad or inapplicable one."""
    known = {f.name for f in fields(FlatConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"unknown GFlowNet option {unknown[0]}; the options are those of FlatConfig.")
    return build(FlatConfig(**options))


def build(flat: FlatConfig):
    """(algorithm, nested config) of a flat config; see `from_flat`."""
    check_choice("env", flat.env, ENVS)
    check_choice("loss", flat.loss, LOSSES)
    check_choice("explore", flat.explore, EXPLORE)
    check_choice("network", flat.network, ("auto", "mlp", "transformer"))
    soft = flat.loss in ("sdqn", "mdqn")
    transformer = flat.network == "transformer" or (flat.network == "auto" and flat.env == "bitseq")
    applies = set(ENV_OPTIONS[flat.env]) | set(SAMPLING) | {"env", "loss", "explore", "network"}
    applies |= set(TRANSFORMER_OPTIONS if transformer else MLP_OPTIONS)
    if soft:
        if flat.explore not in ("none", "epsilon"):
            raise ConfigError(f"loss={flat.loss} has its own replay; explore must be none or epsilon, got "
                              f"{flat.explore}.")
        applies |= set(SOFT_RL_OPTIONS) - ({"munchausen_alpha", "munchausen_l0"} if flat.loss == "sdqn" else set())
        if flat.backward_policy == "uniform":  # the only P_B soft RL has: saying so is allowed
            applies.add("backward_policy")
    else:
        applies |= set(BALANCE_OPTIONS) - ({"subtb_lambda"} if flat.loss != "subtb" else set())
        if flat.loss != "tb" and flat.explore not in ("lggfn", "teacher", "sagfn"):
            applies.discard("log_z_lr")  # only TB and the auxiliary GFlowNets (trained by TB) have a log Z
        if flat.loss != "tb":
            applies.discard("log_z_size")
        if flat.explore in EXPLORE_OPTIONS:
            applies |= set(EXPLORE_OPTIONS[flat.explore][1])
    _refuse_inapplicable(flat, applies)
    if flat.explore == "epsilon" and flat.epsilon == 0.0:
        raise ConfigError("explore=epsilon needs --epsilon > 0 (the probability of a uniform action).")

    pick = lambda mapping: {field: getattr(flat, name) for name, field in mapping.items()}
    env = ENV_TYPES[flat.env](**{name: getattr(flat, name) for name in ENV_OPTIONS[flat.env]})
    network = _make(TransformerConfig, TRANSFORMER_OPTIONS, flat) if transformer else _make(MLPConfig, MLP_OPTIONS, flat)
    sampling = {name: getattr(flat, name) for name in SAMPLING}
    if soft:
        options = pick(SOFT_RL_OPTIONS)
        if flat.loss == "sdqn":
            options.update(munchausen_alpha=0.0, l0=None)
        return soft_dqn.ALGORITHM, _make(soft_dqn.SoftDQNConfig, SOFT_RL_OPTIONS, flat, env=env, network=network,
                                         **sampling, **options)
    explore = None
    if flat.explore in EXPLORE_OPTIONS:
        strategy, mapping = EXPLORE_OPTIONS[flat.explore]
        explore = _make(strategy, mapping, flat)
    config = balance.BalanceConfig(env=env, network=network, loss=flat.loss, explore=explore, **sampling,
                                   **{name: getattr(flat, name) for name in BALANCE_OPTIONS})
    return balance.ALGORITHM, config


def _make(config_type, mapping: dict[str, str], flat: FlatConfig, **values):
    """config_type built from the flat options `mapping` names (or from `values`), its errors speaking of the
    flat names the user typed."""
    try:
        return config_type(**(values or {field: getattr(flat, name) for name, field in mapping.items()}))
    except ConfigError as error:
        message = str(error)
        for flat_name, field in mapping.items():
            if flat_name != field and message.startswith(f"{field} "):
                raise ConfigError(flat_name + message[len(field):]) from None
        raise


def _refuse_inapplicable(flat: FlatConfig, applies: set[str]) -> None:
    defaults = asdict(DEFAULTS)
    for name, value in asdict(flat).items():
        if name not in applies and value != defaults[name]:
            raise ConfigError(f"{name} does not apply to env={flat.env}, loss={flat.loss}, explore={flat.explore}; "
                              f"leave it at its default {defaults[name]!r} (got {value!r}).")
