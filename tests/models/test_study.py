"""The papers' study on a tiny plan: every (arm, seed) trained, exported, evaluated, resumed and reported.

Two arms are the same tracker with the same config, so their training is identical seed for seed: the
study must find an effect of exactly zero with a zero-width interval (which rules out a gain: "not
reproduced"). A third arm differs (no cosine window), so its effect is real and its rows differ.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from siamstream.study import runner
from siamstream.study.plan import StudyPlan
from siamstream.study.report import (
    arm_table,
    claim_results,
    load_results,
    markdown,
    model_card,
    plot_claims,
)
from siamstream.study.runner import EVALUATION_FILE, StudyError, Task, run_study, study_tasks

pytestmark = pytest.mark.slow

PLAN = {
    "train_sequences": 4,
    "seeds": [0, 1],
    "schedule": {
        "epochs": 2,
        "batch_size": 2,
        "pairs_per_epoch": 2,
        "search_size": 191,
        "num_workers": 0,
        "lr": {"warmup_epochs": 0, "base_lr": 0.01, "end_lr": 0.001},
        "backbone": {"unfreeze_epoch": 0, "lr_multiplier": 1.0},
    },
    "suite": {"per_stratum": 1, "seed": 3, "length": 12, "width": 192, "height": 160},
    "arms": [
        {"name": "plain", "tracker": "siamrpnpp_small"},
        {"name": "same", "tracker": "siamrpnpp_small"},
        {"name": "no_window", "tracker": "siamrpnpp_small", "config": {"hyper": {"window_influence": 0.0}}},
    ],
    "claims": [
        {
            "paper": "Null",
            "claim": "identical arms",
            "baseline": "plain",
            "method": "same",
            "metrics": ["auc"],
        },
        {
            "paper": "Window",
            "claim": "no window",
            "baseline": "plain",
            "method": "no_window",
            "metrics": ["auc", "failures", "eao"],
        },
    ],
}


# The suite's strata in the order of its sequences (one sequence each: `per_stratum` 1).
STRATA = ("distractors", "appearance_change", "fast_motion", "scale_aspect", "occlusion", "out_of_view")


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[StudyPlan, Path]:
    plan = StudyPlan.model_validate(PLAN)
    out = tmp_path_factory.mktemp("study")
    run_study(plan, out, jobs=1, report=lambda line: None)
    return plan, out


def rows(out: Path, arm: str, seed: int) -> list[dict]:
    return json.loads((Task(arm, seed).folder(out) / EVALUATION_FILE).read_text())["sequences"]


def test_every_arm_and_seed_is_trained_exported_and_evaluated_on_every_stratum(study) -> None:
    plan, out = study
    assert [(t.arm, t.seed) for t in study_tasks(plan)][:3] == [("plain", 0), ("same", 0), ("no_window", 0)]
    for task in study_tasks(plan):
        folder = task.folder(out)
        assert (folder / "train" / "checkpoint_e002.pth").is_file()
        assert (folder / "package" / "search.pt").is_file()
        names = [row["name"] for row in rows(out, task.arm, task.seed)]
        assert [name.rsplit("-", 1)[0] for name in names] == list(STRATA)
        for row in rows(out, task.arm, task.seed):
            assert 0.0 <= row["auc"] <= 1.0
            # Every segment but the last ends in a failure; the last one may reach the end of the sequence.
            assert sum(row["segment_failed"]) == row["failures"]
            assert all(row["segment_failed"][:-1]) and len(row["segments"]) >= 1


def test_identical_arms_have_identical_results_and_a_zero_effect(study) -> None:
    plan, out = study
    for seed in plan.seeds:
        assert rows(out, "plain", seed) == rows(out, "same", seed)
    # Different seeds train different models.
    assert rows(out, "plain", 0) != rows(out, "plain", 1)
    null = next(
        result for result in claim_results(plan, load_results(plan, out)) if result.claim.paper == "Null"
    )
    assert (null.effect.mean, null.effect.low, null.effect.high) == (0.0, 0.0, 0.0)
    assert (null.effect.seeds, null.effect.sequences) == (2, 6)
    assert null.verdict == "not reproduced (preliminary: 2 of 3 seeds)"


def test_the_effect_is_the_mean_paired_difference(study) -> None:
    plan, out = study
    window = [r for r in claim_results(plan, load_results(plan, out)) if r.claim.paper == "Window"]
    assert [r.metric for r in window] == ["auc", "failures", "eao"]
    auc = window[0]
    expected = np.mean(
        [
            [
                a["auc"] - b["auc"]
                for a, b in zip(rows(out, "no_window", s), rows(out, "plain", s), strict=True)
            ]
            for s in (0, 1)
        ]
    )
    assert auc.effect.mean == pytest.approx(expected)
    assert auc.effect.low <= auc.effect.mean <= auc.effect.high
    assert set(auc.strata) == set(STRATA)
    assert auc.verdict.split(" (")[0] in {"reproduced", "not reproduced", "inconclusive"}


def test_a_finished_study_resumes_without_work_and_redoes_only_what_was_removed(study) -> None:
    plan, out = study
    checkpoint = Task("plain", 0).folder(out) / "train" / "checkpoint_e002.pth"
    trained_at = checkpoint.stat().st_mtime_ns
    (Task("plain", 0).folder(out) / EVALUATION_FILE).unlink()
    lines: list[str] = []
    run_study(plan, out, jobs=1, report=lines.append)
    assert lines[0] == "1 tasks to run, 1 at a time"
    assert checkpoint.stat().st_mtime_ns == trained_at  # evaluated again, not trained again
    assert rows(out, "plain", 0) == rows(out, "same", 0)


def test_report_tables_and_plot(study, tmp_path: Path) -> None:
    plan, out = study
    claims = claim_results(plan, load_results(plan, out))
    text = markdown(plan, claims, arm_table(plan, load_results(plan, out)))
    assert (
        "| Null | identical arms | auc | plain -> same | +0.000 [+0.000, +0.000] | 2 x 6 "
        "| not reproduced (preliminary: 2 of 3 seeds) |" in text
    )
    assert text.count("\n| plain | siamrpnpp_small | 2 |") == 1
    assert plot_claims(claims, tmp_path / "claims.png").stat().st_size > 1000


def test_a_failing_task_is_reported_and_the_others_still_run(
    study, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan, _ = study
    ran: list[Task] = []

    def run_or_fail(plan, task, out, device, threads):  # stands in for training: only the order matters
        if task == Task("same", 0):
            raise RuntimeError("disk full")
        ran.append(task)
        return {
            "arm": task.arm,
            "seed": task.seed,
            "sequences": [{"auc": 0.5, "failures": 0}],
            "training_seconds_this_run": 0.0,
            "evaluation_seconds": 0.0,
        }

    monkeypatch.setattr(runner, "run_task", run_or_fail)
    lines: list[str] = []
    with pytest.raises(StudyError, match="1 of 6 tasks failed: same seed 0"):
        run_study(plan, tmp_path, jobs=1, report=lines.append)
    assert len(ran) == 5 and Task("same", 1) in ran
    assert "same seed 0: FAILED: RuntimeError: disk full" in lines


def test_model_card_reports_the_arms_own_scores(study) -> None:
    plan, out = study
    card = model_card(plan, load_results(plan, out), "no_window", 1)
    scored = rows(out, "no_window", 1)
    assert card.startswith("# `siamrpnpp_small` trained by the papers' study (arm `no_window`, seed 1)")
    assert '{"hyper": {"window_influence": 0.0}}' in card
    assert (
        f"| {np.mean([r['auc'] for r in scored]):.3f} | {np.mean([r['precision'] for r in scored]):.3f} | "
        in card
    )
    assert f"| {sum(r['failures'] for r in scored)} |" in card


def test_an_unknown_arm_is_refused_before_anything_runs(study) -> None:
    plan, _ = study
    with pytest.raises(ValueError, match="no arm named 'typo'; the plan has plain, same, no_window"):
        study_tasks(plan, ["plain", "typo"])
