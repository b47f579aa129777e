"""The mechanism probes' report: each paper's mechanism -> the probe's effect with its interval -> finding.

A mechanism with a baseline arm is a paired difference (method - baseline) over the seeds both arms have
probed and the sequences where the probe is defined for both; one without a baseline (the fusion's and the
attention's contrast, which exist only in the method) is the method's value against zero. Both use the
study's paired bootstrap over seeds and sequences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from siamstream.evaluation.bootstrap import Effect, paired_bootstrap
from siamstream.study.plan import Mechanism, StudyPlan
from siamstream.study.probes import PROBES_FILE
from siamstream.study.report import FULL_SEEDS, load_results

# Per-sequence probe rows of every probed (arm, seed).
Probes = dict[tuple[str, int], list[dict[str, Any]]]


@dataclass(frozen=True)
class MechanismResult:
    mechanism: Mechanism
    effect: Effect
    finding: str


def load_probes(plan: StudyPlan, out: Path) -> Probes:
    """Per-sequence probe rows of every probed (arm, seed)."""
    return load_results(plan, out, PROBES_FILE)


def finding(effect: Effect, higher_is_better: bool) -> str:
    """ "seen" when the interval lies on the paper's side of zero, "opposite" when on the other side."""
    sign = 1.0 if higher_is_better else -1.0
    low, high = sorted((sign * effect.low, sign * effect.high))
    word = "seen" if low > 0.0 else "opposite" if high < 0.0 else "unclear"
    if effect.seeds < FULL_SEEDS:
        return f"{word} (preliminary: {effect.seeds} of {FULL_SEEDS} seeds)"
    return word


def mechanism_results(plan: StudyPlan, probes: Probes) -> list[MechanismResult]:
    """Every mechanism whose arms share at least one probed seed and one sequence where it is defined."""
    results = []
    for mechanism in plan.mechanisms:
        arms = [mechanism.method] + ([mechanism.baseline] if mechanism.baseline else [])
        seeds = [seed for seed in plan.seeds if all((arm, seed) in probes for arm in arms)]
        if not seeds:
            continue
        grids = {
            arm: np.array([[row.get(mechanism.probe, np.nan) for row in probes[(arm, s)]] for s in seeds])
            for arm in arms
        }
        method = grids[mechanism.method]
        baseline = grids[mechanism.baseline] if mechanism.baseline else np.zeros_like(method)
        kept = np.isfinite(method).all(axis=0) & np.isfinite(baseline).all(axis=0)
        if not kept.any():
            continue
        effect = paired_bootstrap(method[:, kept], baseline[:, kept])
        results.append(MechanismResult(mechanism, effect, finding(effect, mechanism.higher_is_better)))
    return results


def mechanism_markdown(results: Sequence[MechanismResult]) -> str:
    lines = [
        "| Paper | Mechanism | Probe | Baseline -> method | Effect [95 % CI] | Seeds x sequences | Finding |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        mechanism, effect = result.mechanism, result.effect
        compared = (
            f"{mechanism.baseline} -> {mechanism.method}"
            if mechanism.baseline
            else f"0 -> {mechanism.method}"
        )
        lines.append(
            f"| {mechanism.paper} | {mechanism.mechanism} | {mechanism.probe} | {compared} | {effect} | "
            f"{effect.seeds} x {effect.sequences} | {result.finding} |"
        )
    return "\n".join(lines) + "\n"
