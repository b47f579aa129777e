"""The offline commands end to end: `siamstream track`, `eval` and `bench tracker` on synthetic data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from siamstream.benchmark.tracker import random_network
from siamstream.data import SequenceSpec, generate_sequence, iter_frames, write_mp4
from siamstream.package import TrackerPackage, read_package
from siamstream.registry import get_config
from siamstream.runner import PackageRunner
from siamstream.tracking.offline import OfflineTracker
from tests.models.cli_fixtures import TRACKER, siamstream


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
    init_box = [float(v) for v in sequence.init_box]
    assert frames[0] == {"frame": 0, "bbox": init_box, "best_score": None, "target": 0, "status": "tracking"}
    assert all(0.0 <= f["best_score"] <= 1.0 for f in frames[1:])
    assert result["meta"]["tracker"] == TRACKER and result["meta"]["frames"] == 12

    tracker = OfflineTracker(package.config, PackageRunner(read_package(package.root)))
    expected = tracker.track_sequence(iter_frames(video), tuple(float(v) for v in sequence.init_box))
    np.testing.assert_allclose([f["bbox"] for f in frames], [r.bbox for r in expected], atol=1e-9)
    assert [f["status"] for f in frames] == [r.status.value for r in expected]

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


UPDATING = "siamfc_alexnet"  # SiamFC templates are maps: the family the template update applies to


@pytest.fixture(scope="module")
def fc_packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TrackerPackage]:
    """The same seeded weights exported by `siamstream export` from a training-style checkpoint, once
    plain and once with `--template-update 0.5:0` (every frame updates, half the template each time)."""
    root = tmp_path_factory.mktemp("fc")
    config = get_config(UPDATING)
    checkpoint = root / "checkpoint_e001.pth"
    state = {"tracker": UPDATING, "config": config.model_dump(mode="json"), "epoch": 1}
    torch.save({**state, "state_dict": random_network(config).state_dict()}, checkpoint)
    packages = {}
    for name, extra in (("plain", []), ("update", ["--template-update", "0.5:0"])):
        completed = siamstream("export", "--checkpoint", str(checkpoint), "--out", str(root / name), *extra)
        assert completed.returncode == 0, completed.stderr
        packages[name] = read_package(root / name)
    return packages


def result_boxes(out: Path, name: str) -> np.ndarray:
    return np.loadtxt(out / "results" / name / "syn000-appearance_change.txt", delimiter=",")


def test_export_with_template_update_writes_an_update_capable_package(
    fc_packages: dict[str, TrackerPackage],
) -> None:
    plain, update = fc_packages["plain"], fc_packages["update"]
    assert not plain.meta.template_update and not plain.update_path.exists()
    assert update.meta.template_update and update.update_path.is_file()
    settings = update.config.template_update
    assert (settings.enabled, settings.rate, settings.gate) == (True, 0.5, 0.0)
    assert update.meta.search_outputs[-1] == "search_features"
    assert update.config.crop == plain.config.crop and update.config.hyper == plain.config.hyper


def test_eval_compares_the_same_tracker_with_and_without_the_update(
    fc_packages: dict[str, TrackerPackage], tmp_path: Path
) -> None:
    plain, update = (str(fc_packages[name].root) for name in ("plain", "update"))
    args = ["--synthetic", "1", "--seed", "5", "--length", "16", "--challenge", "appearance_change"]
    completed = siamstream("eval", "--package", plain, "--package", update, *args, "--out", str(tmp_path))
    assert completed.returncode == 0, completed.stderr
    names = [f"{UPDATING}@plain", f"{UPDATING}@update"]
    assert [json.loads((tmp_path / f"{n}.json").read_text())["tracker"] for n in names] == names
    # 16 frames: 15 timed steps; the updating package blends its template after every one of them.
    assert re.search(
        rf"{names[0]}: median step [0-9.]+ ms over 15 steps; template updated in 0 ", completed.stdout
    )
    assert re.search(
        rf"{names[1]}: median step [0-9.]+ ms over 15 steps; template updated in 15 ", completed.stdout
    )
    with_update, without = result_boxes(tmp_path, names[1]), result_boxes(tmp_path, names[0])
    np.testing.assert_array_equal(with_update[:2], without[:2])  # the first update acts from frame 2 on
    assert np.abs(with_update - without).max() > 0.5

    # --template-update 0 turns the update off: the update-capable package then tracks like the plain one.
    override = tmp_path / "rate0"
    completed = siamstream(
        "eval", "--package", update, *args, "--template-update", "0", "--out", str(override)
    )
    assert completed.returncode == 0, completed.stderr
    assert re.search(
        rf"{UPDATING}: median step [0-9.]+ ms over 15 steps; template updated in 0 ", completed.stdout
    )
    np.testing.assert_allclose(result_boxes(override, UPDATING), without, atol=1e-3)


def test_eval_template_update_needs_an_update_capable_package(
    fc_packages: dict[str, TrackerPackage], tmp_path: Path
) -> None:
    plain = str(fc_packages["plain"].root)
    completed = siamstream(
        "eval",
        "--package",
        plain,
        "--synthetic",
        "1",
        "--length",
        "2",
        "--template-update",
        "0.1",
        "--out",
        str(tmp_path),
    )
    assert completed.returncode == 2
    assert "no update.pt, so --template-update cannot apply" in completed.stderr
    assert not (tmp_path / "results").exists()
    malformed = siamstream(
        "eval", "--package", plain, "--synthetic", "1", "--template-update", "0.1:2", "--out", "."
    )
    assert malformed.returncode == 2 and "must be in [0, 1]" in malformed.stderr


def test_bench_tracker_prints_the_documented_figures() -> None:
    sizes = ["--frames", "3", "--repeats", "3", "--batch-sizes", "1,2"]
    completed = siamstream("bench", "tracker", "--tracker", TRACKER, *sizes, "--json")
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert report["template"]["median_ms"] > 0
    for stage in ("crop", "search", "post", "step"):
        assert report["steps"][stage]["median_ms"] > 0 and report["steps"][stage]["n"] == 3, stage
    assert report["steps"]["step"]["median_ms"] >= report["steps"]["search"]["median_ms"]
    assert [row["templates"] for row in report["batch"]] == [1, 2]
    assert all(row["speedup"] > 0 and row["arms"]["single"]["n"] == 3 for row in report["batch"])
    assert set(report["eager"]["arms"]) == {"package", "eager"}
    assert "skipped" in report["bf16"] or set(report["bf16"]["arms"]) == {"fp32", "bf16"}
