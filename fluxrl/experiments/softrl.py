"""Reproduction of "Generative flow networks as entropy-regularized RL" (Tiapkin et al. 2024) on a CPU.

Claim: Munchausen DQN matches or beats TB, DB and SubTB at an equal number of trajectories. Two studies, each
a set of methods trained with the normal runner (seeds vmapped): hypergrid 20^4 with the standard and the hard
reward (exact TV over trajectories) and bit sequences n=120, k=8 (modes found, test Spearman). The protocol is
reduced from the paper's (named in the report): far fewer trajectories, fewer test sequences.
`fluxrl reproduce softrl` runs it and writes `report.md` with plots.
"""

from __future__ import annotations

from pathlib import Path

from fluxrl.experiments.common import Study, final_values, metrics_table, run_reproduction, wall_time_line

PROTOCOL = "cpu-reduced-1"
METHODS = {  # label -> loss settings; the rest of the config is the study's
    "M-DQN": dict(loss="mdqn"),  # soft RL always uses the uniform P_B: it defines the reward
    "soft DQN": dict(loss="sdqn"),
    "TB": dict(loss="tb", backward_policy="uniform"),
    "DB": dict(loss="db", backward_policy="uniform"),
    "SubTB": dict(loss="subtb", backward_policy="uniform"),
}
# Bit sequences, Tiapkin et al.: Adam 2e-3, log Z lr 1e-3, SubTB lambda 1.9; M-DQN with a hard target copy
# every 5 iterations, PER alpha 0.9, beta 0.1 fixed, leaf coefficient 5, epsilon 0.001.
_BITSEQ_DQN = dict(target_polyak=1.0, target_every=5, per_alpha=0.9, per_beta=0.1, per_beta_final=0.1,
                   leaf_coefficient=5.0, epsilon=0.001)
STUDIES = (
    Study("hypergrid-standard", "Hypergrid 20^4, standard reward (R0=1e-3, R1=0.5, R2=2), batch 16",
          dict(env="hypergrid", ndim=4, height=20, reward="standard", batch_size=16, subtb_lambda=0.9),
          tuple(METHODS), iterations=1500, eval_every=300,  # paper: 1e6 trajectories per method
          curves=("tv",), headline="tv", lower_is_better=True),
    Study("hypergrid-hard", "Hypergrid 20^4, hard reward (R0=1e-4, R1=1, R2=3), batch 16",
          dict(env="hypergrid", ndim=4, height=20, reward="hard", batch_size=16, subtb_lambda=0.9),
          tuple(METHODS), iterations=1500, eval_every=300,
          curves=("tv",), headline="tv", lower_is_better=True),
    Study("bitseq", "Bit sequences n=120, k=8, 60 modes, batch 16",
          dict(env="bitseq", n=120, k=8, batch_size=16, lr=2e-3, test_set_size=360),  # paper: 50k iterations,
          # 7,200 test sequences
          # About 1.5 s per iteration for 3 seeds (a 3-layer transformer on every state), and about 12 s per
          # seed per evaluation: 100 iterations is what fits the hour. That few samples find almost no mode
          # (TB found 0.75 on average in 300 iterations), so the verdict is on the test correlation.
          tuple(METHODS), iterations=100, eval_every=100,
          curves=("spearman", "modes_found"), headline="spearman", lower_is_better=False,
          method_overrides={"M-DQN": _BITSEQ_DQN, "soft DQN": _BITSEQ_DQN, "TB": dict(log_z_lr=1e-3),
                            "SubTB": dict(subtb_lambda=1.9)}),
)
PAPER = "M-DQN matches or beats TB, DB and SubTB on hypergrids, molecules and bit sequences (Tiapkin et al. 2024)"


def study_config(study: Study, method: str):
    """(algorithm, config) of one method in one study."""
    from fluxrl.gflownet.flat import from_flat

    return from_flat(**{**study.config, **METHODS[method], **study.method_overrides.get(method, {})})


def summarise(study: Study, rows: dict[str, list[dict]]) -> dict:
    """Final values per method, and whether M-DQN matched or beat the best of TB / DB / SubTB."""
    final = final_values(study, rows)
    baselines = {m: final[m][study.headline] for m in ("TB", "DB", "SubTB") if m in final}
    pick = min if study.lower_is_better else max
    best = pick(baselines, key=lambda m: baselines[m]["mean"])
    mdqn = final["M-DQN"][study.headline]
    # "Matches" = within the larger of the two seed standard deviations of the best baseline's mean.
    tolerance = max(mdqn["std"], baselines[best]["std"])
    if study.lower_is_better:
        verdict = "beats" if mdqn["mean"] < baselines[best]["mean"] - tolerance else (
            "matches" if mdqn["mean"] <= baselines[best]["mean"] + tolerance else "falls behind")
    else:
        verdict = "beats" if mdqn["mean"] > baselines[best]["mean"] + tolerance else (
            "matches" if mdqn["mean"] >= baselines[best]["mean"] - tolerance else "falls behind")
    return {"final": final, "best_baseline": best, "verdict": verdict, "tolerance": tolerance,
            "mdqn": mdqn["mean"], "best": baselines[best]["mean"]}


def write_report(studies, results: dict, out: Path, seeds: int, seconds: dict) -> Path:
    """report.md: per study, a table of final metrics (mean ± std over seeds), the verdict, a plot."""
    lines = [f"# Soft-RL GFlowNets reproduction ({PROTOCOL})", "",
             f"Reduced CPU protocol: {seeds} seeds per method, 16 trajectories per iteration for every method "
             "(so equal iterations = equal trajectories). Exact `tv` by dynamic programming on the learned "
             "forward policy (softmax(Q / tau) for the DQN variants); `modes_found` counts distinct modes among all "
             "sampled trajectories; `spearman` on a subset of the test set (size in the study title's config).",
             "", wall_time_line(seconds), "", f"Paper: {PAPER}.", ""]
    for study in studies:
        summary = results[study.name]
        trajectories = study.config["batch_size"] * study.iterations
        lines += [f"## {study.title}", "",
                  f"{study.iterations} iterations ({trajectories} trajectories) per method, evaluated "
                  f"every {study.eval_every}; wall time {seconds[study.name]:.0f} s for all methods.", "",
                  *metrics_table(study, summary["final"])]
        lines += ["", f"**M-DQN {summary['verdict']} the best of TB / DB / SubTB ({summary['best_baseline']}) on "
                      f"{study.headline}**: {summary['mdqn']:.4g} vs {summary['best']:.4g} (tolerance "
                      f"{summary['tolerance']:.2g}, the larger seed standard deviation).", "",
                  f"![{study.name}]({study.name}.png)", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def reproduce(out: str = "runs/reproduce-softrl", seeds: int = 3, scale: float = 1.0,
              studies: tuple[str, ...] | None = None, progress: bool = True) -> Path:
    """Run the reduced protocol (iterations multiplied by `scale`) and write the report; returns its path."""
    return run_reproduction(STUDIES, study_config, summarise, write_report, PROTOCOL, out, seeds, scale, studies,
                            progress)
