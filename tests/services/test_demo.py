"""`siamstream demo`: the in-process service on embedded defaults, a sequence through it, three files."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from siamstream.cli.main import build_parser
from siamstream.data.synthetic import SequenceSpec, generate_sequence
from siamstream_services.demo.packages import DEMO_PACKAGE, NoTrainedPackage
from siamstream_services.settings import DEMO_PACKAGE_ENV
from tests.services.session_fixtures import INIT_BOX, TRACKER, export_test_package, moving_target_frames


def demo(*arguments: str) -> int:
    args = build_parser().parse_args(["demo", *arguments])
    return args.run(args)


def frame_count(video: Path) -> int:
    capture = cv2.VideoCapture(str(video))
    try:
        assert capture.isOpened()
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_test_package(tmp_path_factory.mktemp("packages"))


def test_demo_on_a_generated_sequence(
    package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    assert demo("--out", str(out), "--frames", "5", "--package", str(package)) == 0

    assert frame_count(out / "annotated.mp4") == 5
    result = json.loads((out / "result.json").read_text())
    truth = generate_sequence(SequenceSpec(name="demo", length=5)).ground_truth
    assert [record["frame"] for record in result["frames"]] == list(range(5))
    assert result["frames"][0]["bbox"] == truth[0].tolist() and result["frames"][0]["best_score"] is None
    assert result["meta"]["random_weights"] is False and result["meta"]["tracker"] == TRACKER

    summary = json.loads((out / "summary.json").read_text())
    latency = summary["push_latency_ms"]
    assert 0 < latency["p50"] <= latency["p99"]
    assert summary["frames"] == 5 and summary["frames_per_s"] > 0
    stages = summary["server_stage_ms_median"]
    assert set(stages) == {"decode", "crop", "inference", "postprocess", "store", "total"}
    assert stages["inference"] > 0 and stages["total"] >= stages["inference"]
    for value in summary["accuracy"].values():
        assert 0.0 <= value <= 1.0
    # Frame 0 is the ground truth itself, so at least 1 of the 5 frames is a success at every threshold.
    assert summary["accuracy"]["precision_20px"] >= 0.2
    printed = capsys.readouterr().out
    assert "PushFrame latency  p50" in printed and "success AUC" in printed and "WARNING" not in printed


def test_demo_with_random_weights_exports_them_and_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        assert demo("--out", str(out), "--frames", "3", "--random-weights") == 0
    assert "RANDOM weights" in caplog.text
    assert "WARNING: random weights" in capsys.readouterr().out
    assert (out / "package" / "siamrpn_alex" / "package.json").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["random_weights"] is True and summary["frames"] == 3


def test_demo_without_its_trained_package_refuses_and_says_how_to_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DEMO_PACKAGE_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(NoTrainedPackage) as refused:
        demo("--out", str(tmp_path / "out"), "--frames", "3")
    message = str(refused.value)
    assert str(tmp_path / "nowhere") in message
    assert "--package DIR" in message and "SIAMSTREAM_DEMO_PACKAGE=DIR" in message
    assert "--random-weights" in message
    assert not (tmp_path / "out").exists()


def test_demo_package_named_by_the_environment(
    package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DEMO_PACKAGE_ENV, str(package))
    assert demo("--out", str(tmp_path / "out"), "--frames", "3") == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["tracker"] == TRACKER and summary["random_weights"] is False


def test_demo_on_a_video_has_no_accuracy(package: Path, tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    frames = moving_target_frames(4)
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"mp4v"), 30.0, frames[0].shape[1::-1])
    for frame in frames:
        writer.write(frame)
    writer.release()
    box = ",".join(str(value) for value in INIT_BOX)
    out = tmp_path / "demo"

    assert demo("--out", str(out), "--video", str(video), "--box", box, "--package", str(package)) == 0

    summary = json.loads((out / "summary.json").read_text())
    assert summary["accuracy"] is None and summary["frames"] == 4
    assert summary["source"] == {"kind": "video", "path": str(video)}
    result = json.loads((out / "result.json").read_text())
    assert result["frames"][0]["bbox"] == list(INIT_BOX)
    assert np.isfinite([record["bbox"] for record in result["frames"]]).all()
    assert frame_count(out / "annotated.mp4") == 4


def test_demo_refuses_a_video_without_a_box(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--video and --box go together"):
        demo("--out", str(tmp_path), "--video", str(tmp_path))


def test_shipped_demo_package_is_found_from_any_directory(tmp_path: Path) -> None:
    """`siamstream demo` run outside the checkout still tracks with the trained package beside the library."""
    assert DEMO_PACKAGE.is_dir(), "the trained demo package is part of the repository"
    environment = {name: value for name, value in os.environ.items() if name != DEMO_PACKAGE_ENV}
    completed = subprocess.run(
        [sys.executable, "-m", "siamstream.cli", "demo", "--out", "out", "--frames", "8"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "WARNING" not in completed.stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["tracker"] == "siamfc_alexnet" and summary["random_weights"] is False
    # The trained SiamFC keeps the plain demo target (AUC 0.91 over 60 frames when it was trained).
    assert summary["accuracy"]["success_auc"] > 0.6
    assert summary["accuracy"]["precision_20px"] == 1.0
