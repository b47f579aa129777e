"""The study's report: each paper's claim, our measured effect with its interval, and a verdict.

Effects are method minus baseline over the (seed, sequence) pairs that both arms have finished, with the
paired bootstrap of `siamstream.evaluation.bootstrap` (seeds and sequences resampled). Verdicts:
- reproduced: the 95 % interval lies entirely on the side the paper claims (better than the baseline);
- not reproduced: the interval rules out a gain of the smallest size worth having (`SMALLEST_GAIN`);
- inconclusive: neither, at this scale.
A verdict over fewer than `FULL_SEEDS` seeds is marked preliminary: one seed says nothing of how much the
effect varies with training.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from siamstream.data.synthetic import STUDY_STRATA
from siamstream.evaluation.bootstrap import Effect, paired_bootstrap
from siamstream.evaluation.reset import ResetRun, eao_curve, expected_average_overlap
from siamstream.study.plan import Claim, Metric, StudyPlan
from siamstream.study.runner import EVALUATION_FILE, Task

# The smallest gain that would matter, per metric (failures per sequence: lower is better). 0.01 AUC is
# about the gap between neighbouring trackers on a benchmark leaderboard.
SMALLEST_GAIN: dict[Metric, float] = {
    "auc": 0.01,
    "precision": 0.01,
    "accuracy": 0.01,
    "eao": 0.01,
    "failures": 0.05,
}
LOWER_IS_BETTER: frozenset[Metric] = frozenset({"failures"})
FULL_SEEDS = 3


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    metric: Metric
    effect: Effect
    strata: dict[str, Effect]
    verdict: str


# Per-sequence result rows of every finished (arm, seed).
Results = dict[tuple[str, int], list[dict[str, Any]]]


def load_results(plan: StudyPlan, out: Path, file_name: str = EVALUATION_FILE) -> Results:
    """Per-sequence rows of every (arm, seed) that has written `file_name` (its evaluation, by default)."""
    results = {}
    for arm in plan.arms:
        for seed in plan.seeds:
            path = Task(arm.name, seed).folder(out) / file_name
            if path.is_file():
                results[(arm.name, seed)] = json.loads(path.read_text())["sequences"]
    return results


def sequence_value(row: dict[str, Any], metric: Metric, length: int) -> float:
    """One sequence's value of `metric` (NaN for an accuracy without any scored frame)."""
    if metric == "accuracy":
        frames = row["accuracy_frames"]
        return row["accuracy_sum"] / frames if frames else float("nan")
    if metric == "eao":
        return expected_average_overlap([_reset_run(row)], 1, length - 1)
    return float(row[metric])


def _reset_run(row: dict[str, Any]) -> ResetRun:
    """The parts of a reset run that EAO reads (its segments), rebuilt from a result row."""
    segments = tuple(np.asarray(segment, dtype=np.float64) for segment in row["segments"])
    return ResetRun(np.empty(0), (), (), segments, tuple(row["segment_failed"]))


def verdict(effect: Effect, metric: Metric) -> str:
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    low, high = sorted((sign * effect.low, sign * effect.high))
    if low > 0.0:
        word = "reproduced"
    elif high < SMALLEST_GAIN[metric]:
        word = "not reproduced"
    else:
        word = "inconclusive"
    if effect.seeds < FULL_SEEDS:
        return f"{word} (preliminary: {effect.seeds} of {FULL_SEEDS} seeds)"
    return word


def claim_results(plan: StudyPlan, results: Results) -> list[ClaimResult]:
    """Every metric of every claim whose two arms share at least one finished seed."""
    length = plan.suite.length
    rows = []
    for claim in plan.claims:
        seeds = [s for s in plan.seeds if (claim.baseline, s) in results and (claim.method, s) in results]
        if not seeds:
            continue
        strata_of_columns = np.array([row["stratum"] for row in results[(claim.baseline, seeds[0])]])
        for metric in claim.metrics:
            grids = {
                arm: np.array(
                    [[sequence_value(row, metric, length) for row in results[(arm, s)]] for s in seeds]
                )
                for arm in (claim.method, claim.baseline)
            }
            method, baseline = grids[claim.method], grids[claim.baseline]
            kept = np.isfinite(method).all(axis=0) & np.isfinite(baseline).all(axis=0)
            effect = paired_bootstrap(method[:, kept], baseline[:, kept])
            strata = {}
            for stratum in STUDY_STRATA:
                columns = kept & (strata_of_columns == stratum)
                if columns.any():
                    strata[stratum] = paired_bootstrap(method[:, columns], baseline[:, columns])
            rows.append(ClaimResult(claim, metric, effect, strata, verdict(effect, metric)))
    return rows


def arm_table(plan: StudyPlan, results: Results) -> list[dict[str, Any]]:
    """Per arm: seeds finished, mean (and spread over seeds) of AUC and failures, pooled EAO and accuracy."""
    length = plan.suite.length
    table = []
    for arm in plan.arms:
        seeds = [s for s in plan.seeds if (arm.name, s) in results]
        if not seeds:
            continue
        aucs = [np.mean([row["auc"] for row in results[(arm.name, s)]]) for s in seeds]
        failures = [np.sum([row["failures"] for row in results[(arm.name, s)]]) for s in seeds]
        eaos = [
            expected_average_overlap([_reset_run(r) for r in results[(arm.name, s)]], 1, length - 1)
            for s in seeds
        ]
        accuracy = [
            sum(r["accuracy_sum"] for r in results[(arm.name, s)])
            / max(1, sum(r["accuracy_frames"] for r in results[(arm.name, s)]))
            for s in seeds
        ]
        table.append(
            {
                "arm": arm.name,
                "tracker": arm.tracker,
                "seeds": len(seeds),
                "auc": (float(np.mean(aucs)), float(np.min(aucs)), float(np.max(aucs))),
                "failures": (float(np.mean(failures)), float(np.min(failures)), float(np.max(failures))),
                "eao": (float(np.mean(eaos)), float(np.min(eaos)), float(np.max(eaos))),
                "accuracy": (float(np.mean(accuracy)), float(np.min(accuracy)), float(np.max(accuracy))),
            }
        )
    return table


def eao_curves(plan: StudyPlan, results: Results) -> dict[str, np.ndarray]:
    """Per arm, the EAO curve over all its finished seeds' runs (lengths 1..L-1)."""
    curves = {}
    for arm in plan.arms:
        runs = [_reset_run(r) for s in plan.seeds for r in results.get((arm.name, s), [])]
        if runs:
            curves[arm.name] = eao_curve(runs, plan.suite.length - 1)
    return curves


def markdown(plan: StudyPlan, claims: Sequence[ClaimResult], arms: Sequence[dict[str, Any]]) -> str:
    """The results as Markdown tables: claims with effects and verdicts, strata, arms."""
    lines = [
        "| Paper | Claim | Metric | Baseline -> method | Effect [95 % CI] | Seeds x sequences | Verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in claims:
        claim, effect = result.claim, result.effect
        lines.append(
            f"| {claim.paper} | {claim.claim} | {result.metric} | {claim.baseline} -> {claim.method} | "
            f"{effect} | {effect.seeds} x {effect.sequences} | {result.verdict} |"
        )
    lines += ["", "Per challenge stratum (effect of the first metric of each claim, [95 % CI]):", ""]
    strata = list(STUDY_STRATA)
    lines += ["| Paper | " + " | ".join(strata) + " |", "|---" * (len(strata) + 1) + "|"]
    seen = set()
    for result in claims:
        if result.claim.paper in seen:
            continue
        seen.add(result.claim.paper)
        cells = [str(result.strata[s]) if s in result.strata else "" for s in strata]
        lines.append(f"| {result.claim.paper} ({result.metric}) | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| Arm | Tracker | Seeds | AUC mean (min-max) | Failures per seed (min-max) | EAO (min-max) "
        "| Accuracy |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in arms:
        auc, fail, eao = row["auc"], row["failures"], row["eao"]
        lines.append(
            f"| {row['arm']} | {row['tracker']} | {row['seeds']} | {auc[0]:.3f} ({auc[1]:.3f}-{auc[2]:.3f}) "
            f"| {fail[0]:.1f} ({fail[1]:.0f}-{fail[2]:.0f}) | {eao[0]:.3f} ({eao[1]:.3f}-{eao[2]:.3f}) "
            f"| {row['accuracy'][0]:.3f} |"
        )
    return "\n".join(lines) + "\n"


def plot_claims(claims: Sequence[ClaimResult], path: Path) -> Path:
    """One panel per claim metric: the overall effect and each stratum's, with their intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(claims), 1, figsize=(8, 2.2 * len(claims)), squeeze=False)
    for axis, result in zip(axes[:, 0], claims, strict=True):
        labels = ["all", *result.strata]
        effects = [result.effect, *result.strata.values()]
        means = np.array([e.mean for e in effects])
        errors = np.array([[e.mean - e.low for e in effects], [e.high - e.mean for e in effects]])
        axis.errorbar(means, np.arange(len(effects)), xerr=errors, fmt="o", capsize=3)
        axis.axvline(0.0, color="grey", linewidth=0.8)
        axis.set_yticks(np.arange(len(effects)), labels)
        axis.invert_yaxis()
        axis.set_title(
            f"{result.claim.paper}: {result.claim.method} - {result.claim.baseline}, {result.metric} "
            f"({result.verdict})",
            fontsize=9,
        )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_eao_curves(curves: dict[str, np.ndarray], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    for arm, curve in curves.items():
        axis.plot(np.arange(1, len(curve) + 1), curve, label=f"{arm} (EAO {np.nanmean(curve):.3f})")
    axis.set_xlabel("Sequence length (frames)")
    axis.set_ylabel("Expected average overlap")
    axis.set_ylim(0, 1)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def model_card(plan: StudyPlan, results: Results, arm_name: str, seed: int) -> str:
    """MODEL_CARD.md for the package of (`arm_name`, `seed`): what it is, how it was trained, its scores."""
    arm = plan.arm(arm_name)
    rows = results.get((arm_name, seed))
    if rows is None:
        raise ValueError(f"{arm_name} seed {seed} has no evaluation")
    training = plan.training_config(arm, seed)
    length = plan.suite.length
    runs = [_reset_run(row) for row in rows]
    strata = {
        stratum: np.mean([row["auc"] for row in rows if row["stratum"] == stratum])
        for stratum in STUDY_STRATA
    }
    pairs = training.epochs * training.pairs_per_epoch
    lines = [
        f"# `{arm.tracker}` trained by the papers' study (arm `{arm_name}`, seed {seed})",
        "",
        "Trained from scratch on the project's synthetic sequences by `bench/papers_study.py` (plan",
        "`bench/papers_study.json`); it has seen nothing else, so it is a demo-sized model of the method,",
        "not a general-purpose tracker.",
        "",
        f"- Tracker: `{arm.tracker}`, config overrides {json.dumps(arm.config) if arm.config else 'none'}.",
        f"- Training: `synthetic:{plan.train_sequences}`, {training.epochs} epochs x "
        f"{training.pairs_per_epoch} pairs ({pairs} pairs, batch {training.batch_size}), search crops "
        f"{training.search_size} px, SGD lr {training.lr.base_lr} -> {training.lr.end_lr} "
        f"({training.lr.decay}), whole network trained, seed {seed}.",
        f"- Held-out suite: {plan.suite.per_stratum} sequences per challenge stratum x "
        f"{len(STUDY_STRATA)} strata, {length} frames, {plan.suite.width}x{plan.suite.height}, "
        f"suite seed {plan.suite.seed}.",
        "",
        "| success AUC | precision@20 px | failures (reset protocol) | EAO | accuracy |",
        "| --- | --- | --- | --- | --- |",
        f"| {np.mean([r['auc'] for r in rows]):.3f} | {np.mean([r['precision'] for r in rows]):.3f} | "
        f"{sum(r['failures'] for r in rows)} | {expected_average_overlap(runs, 1, length - 1):.3f} | "
        f"{sum(r['accuracy_sum'] for r in rows) / max(1, sum(r['accuracy_frames'] for r in rows)):.3f} |",
        "",
        "Success AUC per stratum: "
        + ", ".join(f"{name} {value:.3f}" for name, value in strata.items())
        + ".",
        "",
        "Reproduce: `python bench/papers_study.py run --out DIR --arms "
        f"{arm_name}` then `python bench/papers_study.py package --out DIR --arm {arm_name} --seed {seed} "
        "--dest THIS_FOLDER`.",
    ]
    return "\n".join(lines) + "\n"
