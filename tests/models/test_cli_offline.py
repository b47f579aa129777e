"""The offline commands end to end: `siamstream track`, `eval` and `bench tracker` on synthetic data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from siamstream.benchmark.tracker import random_network
from siamstream.data import SequenceSpec, generate_sequence, iter_frames, write_mp4
from siamstream.package import TrackerPackage, export_package, read_package
from siamstream.registry import get_config
from siamstream.runner import TorchScriptRunner
from siamstream.tracking.offline import OfflineTracker

SIAMSTREAM = [sys.executable, "-m", "siamstream.cli"]
TRACKER = "siamrpn_alex"


def siamstream(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SIAMSTREAM, *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> TrackerPackage:
    config = get_config(TRACKER)
    return export_package(random_network(config), config, tmp_path_factory.mktemp("package") / TRACKER)


def test_track_writes_the_offline_trackers_boxes(package: TrackerPackage, tmp_path: Path) -> None:
    sequence = generate_sequence(SequenceSpec(name="walk", length=12, seed=3, width=320, height=240))
    video = write_mp4(sequence, tmp_path / "walk.mp4")
    box = ",".join(str(float(v)) for v in sequence.init_box)
    completed = siamstream(
        "track",
        "--tracker",
        TRACKER,
        "--package",
        str(package.root),
        "--video",
        str(video),
        "--box",
        box,
        "--out",
        str(tmp_path / "result.json"),
        "--annotated",
        str(tmp_path / "annotated.mp4"),
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    frames = result["frames"]
    assert [f["frame"] for f in frames] == list(range(12))
    assert frames[0] == {"frame": 0, "bbox": [float(v) for v in sequence.init_box], "best_score": None}
    assert all(0.0 <= f["best_score"] <= 1.0 for f in frames[1:])
    assert result["meta"]["tracker"] == TRACKER and result["meta"]["frames"] == 12

    tracker = OfflineTracker(package.config, TorchScriptRunner(read_package(package.root)))
    expected = tracker.track_sequence(iter_frames(video), tuple(float(v) for v in sequence.init_box))
    np.testing.assert_allclose([f["bbox"] for f in frames], [r.bbox for r in expected], atol=1e-9)

    annotated = cv2.VideoCapture(str(tmp_path / "annotated.mp4"))
    assert int(annotated.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    annotated.release()


def test_track_rejects_a_package_of_another_tracker(package: TrackerPackage, tmp_path: Path) -> None:
    completed = siamstream(
        "track",
        "--tracker",
        "siamban_r50",
        "--package",
        str(package.root),
        "--video",
        str(tmp_path),
        "--box",
        "1,1,10,10",
        "--out",
        str(tmp_path / "r.json"),
    )
    assert completed.returncode == 2
    assert "holds 'siamrpn_alex', not 'siamban_r50'" in completed.stderr


def test_track_refuses_a_malformed_box(package: TrackerPackage, tmp_path: Path) -> None:
    completed = siamstream(
        "track",
        "--tracker",
        TRACKER,
        "--package",
        str(package.root),
        "--video",
        str(tmp_path),
        "--box",
        "1,2,3",
        "--out",
        str(tmp_path / "r.json"),
    )
    assert completed.returncode == 2 and "box must be x,y,w,h" in completed.stderr


def test_eval_on_a_synthetic_suite_writes_reports_and_plots(package: TrackerPackage, tmp_path: Path) -> None:
    completed = siamstream("eval", "--package", str(package.root), "--synthetic", "2", "--out", str(tmp_path))
    assert completed.returncode == 0, completed.stderr
    report = json.loads((tmp_path / f"{TRACKER}.json").read_text())
    assert len(report["sequences"]) == 2
    for row in report["sequences"]:
        assert 0.0 <= row["success_auc"] <= 1.0 and 0.0 <= row["precision"] <= 1.0
        boxes = np.loadtxt(tmp_path / "results" / TRACKER / f"{row['name']}.txt", delimiter=",")
        assert boxes.shape == (row["frames"], 4)
    for plot in ("success.png", "precision.png", "norm_precision.png"):
        assert (tmp_path / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_tracker_prints_the_documented_figures() -> None:
    completed = siamstream(
        "bench", "tracker", "--tracker", TRACKER, "--frames", "3", "--bf16-frames", "1", "--json"
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    for key in ("template_ms", "crop_ms", "search_ms", "post_ms", "step_ms"):
        assert report[key] > 0, key
    assert report["step_ms"] >= report["search_ms"]
    assert [row["templates"] for row in report["batch"]] == [1, 4, 16]
    assert all(row["speedup"] > 0 for row in report["batch"])
    assert report["bf16"]["search_ms"] > 0 and report["bf16"]["frames"] == 1
