"""Reproduction of CNF (Akimov et al. 2022, arXiv 2211.11096) against PLAS and CORL's baselines, on a CPU.

CNF (AWAC in the bounded latent of a pre-trained flow), PLAS (a policy in a VAE's latent clipped at 2), AWAC, IQL and
TD3+BC on four D4RL-style datasets made locally (`fluxrl data make`), and the paper's two ablations on two of them:
the flow trained with a normal instead of a uniform prior, and PLAS's VAE instead of the flow as CNF's decoder.
The claims checked are the paper's: CNF beats PLAS, it is about as good as AWAC, a uniform latent beats a normal
one, a flow beats a VAE. Protocol cpu-reduced-2: every difference from the official code is named in
`PROTOCOL_TABLE` with its file and line, and the flow pre-trained for the official epochs is tried where CNF trails
AWAC most; `paper` runs the official CNF budget. `fluxrl reproduce cnf` makes (or reuses) the datasets, pre-trains (or
reuses) the flows and VAEs, runs every method and writes `report.md` with learning curves.
"""

from __future__ import annotations

import time
from pathlib import Path

from fluxrl.experiments.common import (Study, claim_verdict, curve, final_values, protocol_markdown,
                                       rebuild_from_runs, run_reproduction, store_run_facts, wall_time_line)
from fluxrl.experiments.offline import compare, make_datasets
from fluxrl.offline import corl

OFFICIAL = {"CNF": "tinkoff-ai/cnf", "PLAS": "Wenxuan-Zhou/PLAS", "CORL": "tinkoff-ai/CORL"}
METHODS = ("CNF", "PLAS", "AWAC", "IQL", "TD3+BC")
ABLATIONS = ("CNF normal prior", "CNF VAE decoder")
# The report's open question (CNF trails AWAC where the flow is pre-trained briefly), asked where the gap is largest:
# the same flow pre-trained for the official code's epochs (350 on replay data, run_flow.py:30-35).
LONG_FLOW = "CNF official flow epochs"
LONG_FLOW_DATASETS = ("halfcheetah-medium-replay",)
PROTOCOL = "cpu-reduced-2"
PAPER_PROTOCOL = "paper"
PROTOCOLS = (PROTOCOL, PAPER_PROTOCOL)
DATASETS = ("maze2d-umaze", "hopper-medium", "halfcheetah-medium", "halfcheetah-medium-replay")
ABLATION_DATASETS = ("hopper-medium", "halfcheetah-medium-replay")

# Per protocol: updates per run, evaluation interval, the flow preset, CNF's batch and PLAS's VAE steps. cpu-reduced-2
# fits 90 minutes on the 2-core machine with the pre-training (docs/offline.md has the measured times); `paper` is the
# official CNF run's budget (configs/run_rl.py:12-18: 200,000 updates at batch 512, the 12 x 256 flow on the official
# epoch schedule) and PLAS's VAE budget (main.py:55), for machines with more time (estimate in docs/offline.md).
BUDGETS = {
    PROTOCOL: dict(updates=10_000, eval_every=2_500, flow="cpu", cnf_batch=256, vae_steps=15_000),
    PAPER_PROTOCOL: dict(updates=200_000, eval_every=5_000, flow="paper", cnf_batch=512, vae_steps=500_000),
}
# CNF takes AWAC's temperature (configs/offline/awac/*) so that CNF and AWAC differ only in where the policy acts
# (the CNF code's 1/3, configs/run_rl.py:23, is CORL's locomotion value). AWAC, IQL and TD3+BC run CORL's config for
# each dataset (fluxrl/offline/corl.py), and its evaluation episodes.
BASELINES = {"AWAC": "awac", "IQL": "iql", "TD3+BC": "td3bc"}
# PLAS sees raw states, as the official code (main.py:93 loads d4rl.qlearning_dataset and never normalises);
# normalised states stay an option of the algorithm (`fluxrl train offline plas --normalize-states`).
PLAS_NORMALIZE_STATES = False
# cpu-reduced-2's flow pre-training epochs: about 5,000 AdamW steps at batch 1024 on every dataset (1M transitions: 6
# epochs; halfcheetah-medium-replay's 70,000: 80), where the official code runs 100 (medium) and 350 (replay) epochs.
FLOW_EPOCHS = {"maze2d-umaze": 6, "hopper-medium": 6, "halfcheetah-medium": 6, "halfcheetah-medium-replay": 80}


def _studies(protocol: str) -> tuple[Study, ...]:
    """One study per dataset under the protocol's budget."""
    budget = BUDGETS[protocol]
    return tuple(
        Study(name, f"{name} (D4RL-style), D4RL-normalised score",
              dict(dataset=name, eval_episodes=corl.eval_episodes(name), protocol=protocol),
              METHODS + (ABLATIONS if name in ABLATION_DATASETS else ())
              + ((LONG_FLOW,) if protocol == PROTOCOL and name in LONG_FLOW_DATASETS else ()),
              iterations=budget["updates"], eval_every=budget["eval_every"], curves=("normalized_score",),
              headline="normalized_score", lower_is_better=False, eval_at_start=False)
        for name in DATASETS)


STUDIES = _studies(PROTOCOL)
PAPER_STUDIES = _studies(PAPER_PROTOCOL)

# Where the methods stand on the original D4RL files: CORL's last scores (README.md lines 63, 64, 66,
# 78), and where the CNF curves of the official readme end (imgs/halfcheetah-*.png). The paper's own table is not
# among them: neither the official repositories nor this project's references hold its numbers.
# Updates behind each reference: the official CNF run (configs/run_rl.py:18) and CORL's (1M, the files above).
REFERENCE_UPDATES = {"CNF": 200_000, "AWAC": 1_000_000, "IQL": 1_000_000, "TD3+BC": 1_000_000}
REFERENCE = {
    "halfcheetah-medium": {"TD3+BC": 48.10, "IQL": 48.31, "AWAC": 49.46, "CNF": 50.0},
    "halfcheetah-medium-replay": {"TD3+BC": 44.84, "IQL": 44.46, "AWAC": 44.70, "CNF": 46.0},
    "hopper-medium": {"TD3+BC": 60.37, "IQL": 67.53, "AWAC": 74.45},
    "maze2d-umaze": {"TD3+BC": 29.41, "IQL": 42.11, "AWAC": 82.67},
}

# setting | official code (repository path:line) | ours | why they differ ("" where they agree)
PROTOCOL_TABLE = (
    ("data", "D4RL's files (hopper/halfcheetah-medium-v2, -medium-replay-v2, maze2d-umaze-v1) via d4rl",
     "D4RL-style files made by fluxrl (`data make`) with D4RL's recipes (SAC of ours stopped at a third of D4RL's "
     "expert return; maze2d from a planner and D4RL's PD controller)", "no internet: D4RL cannot be downloaded; "
     "scores on our data are not scores on D4RL"),
    ("flow", "12 blocks x [ActNorm, invertible linear, coupling MLP 256 wide] (cnf configs/run_flow.py:10-11; "
     "train_rl.py:91 hard-codes 12)", "the `cpu` preset: 4 blocks, 128 wide, 2 hidden layers (fluxrl/offline/flows.py)",
     "cost: a `paper` flow update costs several times a `cpu` one (measured in BENCHMARKS.md, \"cost of a CNF "
     "update\")"),
    ("flow pre-training", "AdamW 5e-4, wd 1e-4, batch 1024 (run_flow.py:13-15), clip 0.1 (train_flow.py:31), 10% "
     "validation (offline_dataset.py:18); 50 epochs expert, 100 medium, 350 replay (run_flow.py:30-35); the "
     "checkpoint chosen by hand (readme, step 2)", "the same optimiser and split; about 5,000 steps (6 epochs on 1M "
     "transitions, 80 on medium-replay's 70,000; the `paper` preset runs the official epochs by dataset name); on "
     "halfcheetah-medium-replay a second CNF run with the official 350 epochs; the best validation epoch kept "
     "automatically", "budget: the validation NLL gains little after the first epochs (maze2d-umaze: -9.3 at 6 "
     "epochs, -10.3 at 30)"),
    ("CNF RL", "latent AWAC, 3x256 (MLP n_layers=4), Adam 3e-4, gamma 0.99, tau 2e-3, batch 512, 200,000 updates "
     "(run_rl.py:12-18), lambda 1/3 (run_rl.py:23)", "the same networks and optimiser; batch 256, 10,000 updates; "
     "lambda as CORL's AWAC per dataset (0.3333, 0.1 on maze2d)", "budget; batch and lambda as the AWAC baseline's "
     "so that CNF and AWAC differ only in the latent"),
    ("evaluation", "every 100 updates, 10 episodes, stochastic actor (run_rl.py:19-21, train_rl.py:131-134)",
     "every 2,500 updates, 10 episodes (100 on maze2d, as CORL), the same stochastic latent",
     "evaluation costs more than 100 updates here"),
    ("reported score", "curves of the evaluation score, best and last logged (train_rl.py:135-139)",
     "the final evaluation, mean ± std over 3 seeds, each seed listed, and the best evaluation's mean",
     "the best evaluation over a run picks the luckiest of many noisy evaluations; the final one is CORL's measure"),
    ("PLAS", "VAE 750x2, lr 1e-4, 500,000 steps (PLAS main.py:54-56); latent clip 2 (main.py:57), no perturbation "
     "(phi 0, main.py:58); batch 100, actor 1e-4, critic 1e-3, tau 0.005 (main.py:59-62); 500,000 updates "
     "(main.py:52); raw states (main.py:93, d4rl.qlearning_dataset, never normalised)", "the same, raw states "
     "included, but the VAE for 15,000 steps and 10,000 updates; one VAE per dataset shared by the seeds", "budget"),
    ("AWAC, IQL, TD3+BC", "CORL's config for each dataset (configs/offline/<algo>/<env>/<dataset>.yaml), 1M updates "
     "(CORL algorithms/offline/awac.py:35, iql.py:38, td3_bc.py:31)", "CORL's config for each dataset "
     "(fluxrl/offline/corl.py; the per-dataset row below), 10,000 updates, IQL's cosine over them", "budget"),
    ("ablations", "uniform vs normal latent, flow vs VAE (paper, section on ablations); the RL code builds every flow "
     "with the uniform prior's final tanh (train_rl.py:89-94), so a normal-prior flow (run_flow.py:22,39 "
     "`--normal`) is driven through its inverse, clamp and atanh (invertible_tanh.py:39-43)",
     "`--prior normal`: the flow retrained with a normal prior, the policy's tanh output mapped through the same "
     "clamp and atanh (unbounded up to +-6.1); `--decoder vae`: PLAS's VAE on normalised states, latent in +-2; on "
     "hopper-medium and halfcheetah-medium-replay", "budget: two datasets"),
    ("seeds", "official runs: 1 per command; CORL: 4", "3 per method, one CPU device each (sharing 2 cores)",
     "the issue's minimum; the spread sets the noise floor of every verdict"),
    ("official code run here", "—", "not run", "it needs gym 0.23, mujoco-py and d4rl's downloaded files"),
)

CLAIMS = {
    "CNF vs PLAS": "CNF beats PLAS (the paper's main comparison)",
    "CNF vs AWAC": "CNF is about as good as AWAC (the official halfcheetah curves end near AWAC's)",
    "uniform vs normal": "a uniform latent beats a normal one",
    "flow vs VAE": "a flow decoder beats PLAS's VAE",
}
PAIRS = {"CNF vs PLAS": ("CNF", "PLAS"), "CNF vs AWAC": ("CNF", "AWAC"),
         "uniform vs normal": ("CNF", "CNF normal prior"), "flow vs VAE": ("CNF", "CNF VAE decoder")}


def protocol_rows() -> tuple[tuple[str, str, str, str], ...]:
    """PROTOCOL_TABLE and a last row of the baselines' per-dataset settings, read off the configs that run."""
    from fluxrl.experiments.offline import corl_changes

    return PROTOCOL_TABLE + (("per-dataset settings", "CORL's configs/offline/<algo>/<env>/<dataset>.yaml where they "
                              "differ from the algorithm's defaults (e.g. iql/hopper/medium_v2.yaml:11,18,22: "
                              "iql_deterministic, normalize_reward, tau 0.001)", "the same values "
                              "(fluxrl/offline/corl.py; IQL's rewards on hopper-medium scaled as normalize_reward "
                              "asks), as run: " + corl_changes(STUDIES, tuple(BASELINES)), ""),)


def protocol_table() -> list[str]:
    """Markdown rows of the protocol table."""
    return protocol_markdown(protocol_rows())


def method_config(study: Study, method: str):
    """The config one method runs on the study's dataset."""
    from fluxrl.experiments import offline
    from fluxrl.offline import cnf, plas
    from fluxrl.offline.flows import paper_epochs
    from fluxrl.offline.vae import VAEConfig

    name = study.config["dataset"]
    if method in BASELINES:
        return offline.method_config(study, method)
    budget = BUDGETS[study.config.get("protocol", PROTOCOL)]
    vae = VAEConfig(steps=budget["vae_steps"])
    if method == "PLAS":
        return plas.PLASConfig(vae=vae)
    # the cpu preset's short schedule; None lets the paper preset (or the long-flow run) take the official epochs
    epochs = FLOW_EPOCHS[name] if budget["flow"] == "cpu" and method != LONG_FLOW else None
    common = dict(batch_size=budget["cnf_batch"], awac_lambda=corl.awac_lambda(name))
    if method == "CNF VAE decoder":
        return cnf.CNFConfig(decoder="vae", vae=vae, **common)
    changes = {"CNF normal prior": dict(prior="normal"), LONG_FLOW: dict(flow_epochs=paper_epochs(name))}
    return cnf.CNFConfig(**{**dict(flow=budget["flow"], flow_epochs=epochs, **common), **changes.get(method, {})})


def study_config(study: Study, method: str, data_dir: str | None = None, models_dir: str | None = None,
                 pretraining: dict | None = None, progress: bool = False):
    """(algorithm, config, shared data) of one method on one dataset; the latent methods' decoder is pre-trained
    or read from `models_dir`, its seconds added to `pretraining[dataset]`."""
    from fluxrl.experiments import offline
    from fluxrl.offline import cnf, plas
    from fluxrl.offline.common import load_offline_data

    name = study.config["dataset"]
    if method in BASELINES:
        return offline.study_config(study, method, data_dir)
    module = plas if method == "PLAS" else cnf
    config = method_config(study, method)
    data = load_offline_data(name, module.ALGORITHM.name, data_dir, study.config["eval_episodes"],
                             normalize_states=PLAS_NORMALIZE_STATES if method == "PLAS" else True)
    began = time.perf_counter()
    data = module.ALGORITHM.prepare_data(config, data, name, models_dir, progress=progress)
    if pretraining is not None:
        pretraining[name] = pretraining.get(name, 0.0) + time.perf_counter() - began
    return module.ALGORITHM, config, data


def summarise(study: Study, rows: dict[str, list[dict]]) -> dict:
    """Final scores per method (mean, std, per seed), the best evaluation's mean, and each paired comparison."""
    final = final_values(study, rows)
    for method, method_rows in rows.items():
        _, values = curve(method_rows, "normalized_score")
        final[method]["best_mean"] = float(values.mean(axis=0).max())
    pairs = {claim: compare(final, a, b) for claim, (a, b) in PAIRS.items() if a in final and b in final}
    gap = {other: compare(final, LONG_FLOW, other) for other in ("CNF", "AWAC") if LONG_FLOW in final}
    return {"final": final, "pairs": pairs, "gap": gap}


def verdict(claim: str, outcome: str) -> str:
    """Whether a paired outcome (better / tie / worse of the first method) goes the paper's way."""
    return claim_verdict(outcome, parity=claim == "CNF vs AWAC")  # the paper claims parity with AWAC


def summary_table(studies: list[Study], results: dict) -> list[str]:
    """Markdown: one row per dataset, one column per claim, the outcome and whether it goes the paper's way."""
    lines = ["| dataset | " + " | ".join(PAIRS) + " |", "|---|" + "---|" * len(PAIRS)]
    for study in studies:
        pairs = results[study.name]["pairs"]
        cells = [f"{pairs[c]} ({verdict(c, pairs[c])})" if c in pairs else "—" for c in PAIRS]
        lines.append(f"| {study.name} | " + " | ".join(cells) + " |")
    return lines


def write_report(studies: list[Study], results: dict, out: Path, seeds: int, seconds: dict,
                 made: dict | None = None) -> Path:
    """report.md: the protocol table, the claims dataset by dataset, then per dataset the scores and curves."""
    protocol = studies[0].config.get("protocol", PROTOCOL) if studies else PROTOCOL
    lines = [f"# CNF against PLAS, AWAC, IQL and TD3+BC on D4RL-style data (protocol `{protocol}`)", "",
             "Datasets **made locally with D4RL's recipes** (`fluxrl data make`), not the original D4RL files; the "
             "reference numbers are on the original data at 20-100x our budget: they say where the methods stand, "
             "not what we should match. They are CORL's last scores and where the official readme's CNF curves end; "
             "the paper's own table (arXiv 2211.11096) is not among them.", "", "## Protocol", "",
             *protocol_table(), "", *_budget_lines(protocol),
             f"{seeds} seeds per method. Method A beats B when A's mean final score exceeds B's by more than the "
             "larger of the two seed standard deviations (the noise floor); inside it, a tie.", "",
             _time_line(seconds), ""]
    if made:
        lines += ["Datasets: " + ", ".join(
            f"{name} {info['size']:,} transitions" + (f" (made in {info['seconds']:.0f} s)" if info["made"]
                                                       else " (reused)") for name, info in made.items()) + ".", ""]
    lines += ["## The paper's claims, dataset by dataset", "", *(f"- {c}: {CLAIMS[c]}." for c in CLAIMS), "",
              *summary_table(studies, results), "", *_gap_lines(studies, results)]
    for study in studies:
        summary = results[study.name]
        lines += [f"## {study.name}", "", f"{study.iterations:,} updates, evaluated every {study.eval_every:,} on "
                  f"{study.config['eval_episodes']} episodes; {seconds.get(study.name, 0.0):.0f} s with the "
                  "decoders' pre-training.", "",
                  "| method | final score (mean ± std) | per seed | best evaluation (mean) | reference, D4RL data "
                  "(its updates, × ours) |", "|---|---|---|---|---|"]
        for method in study.methods:
            result = summary["final"][method]
            score = result["normalized_score"]
            reference = REFERENCE[study.name].get(method)
            lines.append(f"| {method} | {score['mean']:.1f} ± {score['std']:.1f} | "
                         + ", ".join(f"{v:.1f}" for v in score["seeds"])
                         + f" | {result['best_mean']:.1f} | {reference_cell(method, reference, study.iterations)} |")
        lines += ["", f"![{study.name}]({study.name}.png)", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def _budget_lines(protocol: str) -> list[str]:
    """Under `paper`, the budgets that replace the table's cpu-reduced ones."""
    if protocol != PAPER_PROTOCOL:
        return []
    budget = BUDGETS[PAPER_PROTOCOL]
    return [f"Protocol `paper` replaces the budgets above: {budget['updates']:,} updates for every method (the "
            f"official CNF run's; CORL's baselines ran 1M), the `paper` flow (12 blocks x 256) on the official epoch "
            f"schedule, CNF's batch {budget['cnf_batch']}, PLAS's VAE for {budget['vae_steps']:,} steps, evaluated "
            f"every {budget['eval_every']:,} updates.", ""]


def _gap_lines(studies: list[Study], results: dict) -> list[str]:
    """The open question's answer: the flow pre-trained for the official epochs against the brief one and AWAC."""
    from fluxrl.offline.flows import paper_epochs

    lines = []
    for study in studies:
        gap = results[study.name].get("gap")
        if gap:
            final = results[study.name]["final"]
            score = lambda m: f"{final[m]['normalized_score']['mean']:.1f}"  # noqa: E731
            lines.append(f"- {study.name}: CNF with the flow pre-trained for the official "
                         f"{paper_epochs(study.name)} epochs {score(LONG_FLOW)} against the brief flow's "
                         f"{score('CNF')} ({gap['CNF']}) and AWAC's {score('AWAC')} ({gap['AWAC']}).")
    if not lines:
        return []
    return ["## CNF's gap to AWAC: a longer-trained flow", "", *lines, ""]


def reference_cell(method: str, reference: float | None, updates: int) -> str:
    """A reference score with the updates behind it and their ratio to ours; a dash without one."""
    if reference is None:
        return "—"
    theirs = REFERENCE_UPDATES[method]
    return f"{reference:.1f} ({theirs // 1000:,}k updates, {theirs / updates:,.0f}× ours)"


def _time_line(seconds: dict) -> str:
    """The wall time in all and each part's share, then how much of it pre-training the flows and VAEs took."""
    line = wall_time_line({name: value for name, value in seconds.items() if name != "pretraining"})
    pretraining = seconds.get("pretraining", {})
    if not pretraining:
        return line
    return line[:-1] + "; of it, pre-training the flows and VAEs: " + ", ".join(
        f"{name} {value:.0f} s" for name, value in pretraining.items()) + "."


def studies_of(protocol: str) -> tuple[Study, ...]:
    """The studies of the protocol."""
    return PAPER_STUDIES if protocol == PAPER_PROTOCOL else STUDIES


def reproduce(out: str = "runs/reproduce-cnf", seeds: int = 3, scale: float = 1.0,
              studies: tuple[str, ...] | None = None, progress: bool = True, protocol: str = PROTOCOL,
              data_dir: str | None = None, models_dir: str | None = None) -> Path:
    """Make or reuse the datasets, pre-train or reuse the decoders, run the protocol (updates multiplied by
    `scale`), write the report; returns its path."""
    from fluxrl.core.config import check_choice

    check_choice("protocol", protocol, PROTOCOLS)
    chosen = [s.name for s in studies_of(protocol) if studies is None or s.name in studies]
    began = time.perf_counter()
    made = make_datasets(chosen, data_dir, progress)
    data_seconds = time.perf_counter() - began
    pretraining: dict[str, float] = {}
    config_of = lambda study, method: study_config(study, method, data_dir, models_dir, pretraining,  # noqa: E731
                                                   progress)

    def report(chosen_studies, results, out_dir, seeds_, seconds):
        seconds = {"datasets": data_seconds, **seconds, "pretraining": pretraining}
        store_run_facts(out_dir, seconds, made)
        return write_report(chosen_studies, results, out_dir, seeds_, seconds, made)

    return run_reproduction(studies_of(protocol), config_of, summarise, report, protocol, out, seeds, scale,
                            studies, progress)


def rebuild_report(out: str = "runs/reproduce-cnf") -> Path:
    """report.md again from the runs already in `out` (e.g. after changing how results are summarised)."""
    return rebuild_from_runs(out, STUDIES, summarise, write_report, PROTOCOL)
