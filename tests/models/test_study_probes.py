"""The papers' mechanism probes: the metrics on maps worked out by hand, the hooks on real modules, and a
tiny study of DCFNet and SiamCAN probed end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from siamstream.evaluation.bootstrap import Effect
from siamstream.nn.attention import SpatialAttention
from siamstream.nn.staged_correlation import CorrelationFusion
from siamstream.study.plan import StudyPlan
from siamstream.study.probe_report import finding, load_probes, mechanism_results
from siamstream.study.probes import (
    PROBES_FILE,
    MapRecorder,
    attention_figure,
    cell_centres,
    doubled,
    inside,
    map_contrast,
    run_probes,
    score_probe,
)
from siamstream.study.runner import Task, run_study


def test_score_map_metrics_by_hand() -> None:
    scores = np.full((5, 5), 0.1)
    scores[2, 2] = 0.9  # the target
    scores[2, 3] = 0.7  # next to it: neither target nor background
    scores[0, 4] = 0.5  # a look-alike, on the background
    target = np.zeros((5, 5), bool)
    target[2, 2] = True
    ring = target.copy()
    ring[2, 3] = True
    distractor = np.zeros((5, 5), bool)
    distractor[0, 4] = True
    metrics = score_probe(scores, target, ~ring, distractor)
    assert metrics["target_score"] == pytest.approx(0.9)
    assert metrics["hard_negative"] == pytest.approx(0.5)
    assert metrics["separation"] == pytest.approx(0.4)
    # background: 22 cells of 0.1 and the look-alike's 0.5, over a total of 22*0.1 + 0.5 + 0.9 + 0.7
    assert metrics["background_energy"] == pytest.approx(2.7 / 4.3)
    assert metrics["distractor_gap"] == pytest.approx(0.4)
    assert math.isnan(score_probe(scores, target, ~ring, None)["distractor_gap"])


def test_a_target_smaller_than_a_cell_is_scored_on_the_middle_cell() -> None:
    scores = np.zeros((5, 5))
    scores[2, 2] = 0.8
    metrics = score_probe(scores, np.zeros((5, 5), bool), np.ones((5, 5), bool), None)
    assert metrics["target_score"] == pytest.approx(0.8)


def test_cells_map_to_frame_pixels_through_the_crop_scale() -> None:
    # 5 cells, stride 8 crop px, 0.5 crop px per frame px: cells 16 frame px apart about the centre.
    cells = cell_centres(5, 8, 0.5, (100.0, 50.0))
    assert cells[0, 0].tolist() == [68.0, 18.0]
    assert cells[2, 2].tolist() == [100.0, 50.0]
    assert cells[4, 3].tolist() == [116.0, 82.0]
    mask = inside(cells, np.array([90.0, 40.0, 30.0, 20.0]))  # x 90..120, y 40..60
    assert np.argwhere(mask).tolist() == [[2, 2], [2, 3]]
    assert doubled(np.array([90.0, 40.0, 30.0, 20.0])).tolist() == [75.0, 30.0, 60.0, 40.0]


def test_map_contrast_in_units_of_the_maps_spread() -> None:
    values = np.array([[4.0, 0.0], [0.0, 0.0]])
    mask = np.array([[True, False], [False, False]])
    # inside 4, outside 0, population standard deviation sqrt(3)
    assert map_contrast(values, mask) == pytest.approx(4.0 / math.sqrt(3.0))
    assert map_contrast(values, ~mask) == pytest.approx(-4.0 / math.sqrt(3.0))
    assert math.isnan(map_contrast(np.zeros((2, 2)), mask))


class _Fused(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fusion1 = CorrelationFusion(2)

    def forward(self, search: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
        return self.fusion1(search, template)


def test_the_recorder_keeps_the_response_a_fusion_adds_where_the_template_is() -> None:
    module = _Fused().eval()
    recorder = MapRecorder(module)
    pattern = torch.tensor([[1.0, 2.0, 0.0], [0.0, 3.0, 1.0], [2.0, 0.0, 1.0]])
    search = torch.zeros(1, 2, 11, 11)
    search[0, :, 6:9, 1:4] = pattern  # the template's window has its centre cell at (7, 2)
    module(search, pattern.expand(1, 2, 3, 3))
    added = recorder.fusions["fusion1"].numpy()
    # eval-mode batch norm at its initial statistics divides by sqrt(1 + 1e-5); every channel the same
    assert added[7, 2] == pytest.approx(float((pattern**2).sum()) / math.sqrt(1 + 1e-5), rel=1e-5)
    assert tuple(map(int, np.unravel_index(added.argmax(), added.shape))) == (7, 2)
    peak = np.zeros_like(added, dtype=bool)
    peak[7, 2] = True
    assert map_contrast(added, peak) > 0 > map_contrast(added, np.roll(peak, 4, axis=1))


def test_the_recorder_keeps_the_classification_attention_only() -> None:
    module = nn.ModuleDict({"cls": SpatialAttention(3), "loc": SpatialAttention(3)})
    recorder = MapRecorder(module)
    feature = torch.rand(1, 4, 6, 6)
    module["cls"](feature)
    module["loc"](feature)
    assert list(recorder.attentions) == ["cls"]
    attention = recorder.attentions["cls"]
    assert attention.shape == (6, 6)
    assert torch.allclose(module["cls"](feature), feature * attention)


def test_a_finding_needs_its_whole_interval_on_one_side() -> None:
    assert finding(Effect(0.2, 0.1, 0.3, 3, 60), higher_is_better=True) == "seen"
    assert finding(Effect(0.2, 0.1, 0.3, 3, 60), higher_is_better=False) == "opposite"
    assert finding(Effect(0.1, -0.1, 0.3, 3, 60), higher_is_better=True) == "unclear"
    assert finding(Effect(0.2, 0.1, 0.3, 1, 60), True) == "seen (preliminary: 1 of 3 seeds)"


PLAN = {
    "train_sequences": 4,
    "seeds": [0],
    "schedule": {
        "epochs": 1,
        "batch_size": 2,
        "pairs_per_epoch": 2,
        "search_size": 191,
        "num_workers": 0,
        "lr": {"warmup_epochs": 0, "base_lr": 0.01, "end_lr": 0.001},
        "backbone": {"unfreeze_epoch": 0, "lr_multiplier": 1.0},
    },
    "suite": {"per_stratum": 1, "seed": 3, "length": 21, "width": 192, "height": 160},
    "arms": [
        {"name": "dcfnet", "tracker": "dcfnet_small"},
        {"name": "siamcan", "tracker": "siamcan_small"},
    ],
    "claims": [],
    "mechanisms": [
        {"paper": "DCFNet", "mechanism": "m", "method": "dcfnet", "probe": "stage1_contrast"},
        {"paper": "SiamCAN", "mechanism": "m", "method": "siamcan", "probe": "attention_contrast"},
        {
            "paper": "Pair",
            "mechanism": "m",
            "method": "siamcan",
            "baseline": "dcfnet",
            "probe": "separation",
            "higher_is_better": False,
        },
    ],
}


@pytest.mark.slow
def test_a_tiny_study_is_probed_end_to_end(tmp_path: Path) -> None:
    plan = StudyPlan.model_validate(PLAN)
    run_study(plan, tmp_path, jobs=1, report=lambda line: None)
    threads = torch.get_num_threads()
    for arm in ("dcfnet", "siamcan"):
        run_probes(plan, Task(arm, 0), tmp_path)
    # a library call leaves the process's torch threads alone (a later test's in-process tracking
    # would otherwise differ from a model server's by float rounding)
    assert torch.get_num_threads() == threads
    rows = {
        arm: json.loads((Task(arm, 0).folder(tmp_path) / PROBES_FILE).read_text())
        for arm in ("dcfnet", "siamcan")
    }
    strata = [row["stratum"] for row in rows["dcfnet"]["sequences"]]
    assert strata == [
        "distractors",
        "appearance_change",
        "fast_motion",
        "scale_aspect",
        "occlusion",
        "out_of_view",
    ]
    for row in rows["dcfnet"]["sequences"]:
        assert {"stage1_contrast", "stage2_contrast"} <= row.keys()
        assert "attention_contrast" not in row
        assert 0.0 <= row["background_energy"] <= 1.0
        assert row["separation"] == pytest.approx(row["target_score"] - row["hard_negative"])
    for row in rows["siamcan"]["sequences"]:
        assert "attention_contrast" in row and "stage1_contrast" not in row
    # only the look-alike sequence can have a distractor gap
    assert all(math.isnan(row["distractor_gap"]) for row in rows["siamcan"]["sequences"][1:])
    probes = load_probes(plan, tmp_path)
    results = {result.mechanism.paper: result for result in mechanism_results(plan, probes)}
    assert set(results) == {"DCFNet", "SiamCAN", "Pair"}
    expected = np.mean([row["stage1_contrast"] for row in rows["dcfnet"]["sequences"]])
    assert results["DCFNet"].effect.mean == pytest.approx(expected)
    paired = np.mean(
        [
            a["separation"] - b["separation"]
            for a, b in zip(rows["siamcan"]["sequences"], rows["dcfnet"]["sequences"], strict=True)
        ]
    )
    assert results["Pair"].effect.mean == pytest.approx(paired)
    figure = attention_figure(
        plan, Task("siamcan", 0), tmp_path, tmp_path / "attention.png", stratum="distractors"
    )
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
