"""`siamstream track` on real sources: several targets in one video, a start frame and a frame budget, the
source's frame rate, hyperparameter presets and changes, tracker aliases, RTSP streams and cameras."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from siamstream.benchmark.tracker import random_network
from siamstream.config import RPNHyper
from siamstream.data.frames import iter_frames
from siamstream.package import TrackerPackage, export_package, read_package
from siamstream.presets import with_hyper
from siamstream.registry import get_config
from siamstream.runner import PackageRunner
from siamstream.tracking.offline import OfflineTracker
from siamstream_services.testing.ports import free_port
from siamstream_services.testing.rtsp_camera import RTSP_MISSING, RtspCamera, rtsp_available

SIAMSTREAM = [sys.executable, "-m", "siamstream.cli"]
DEMO = Path(__file__).parents[2] / "models" / "packages" / "demo"  # siamfc_alexnet trained on textures
SIDE = 36
FRAMES = 11
VIDEO_FPS = 12.0
# Two textured squares crossing a textured background: one moving right, one moving down-left that is
# taken out of the scene from frame VANISHES on.
STARTS = ((40, 60), (220, 40))
STEPS = ((6, 1), (-3, 5))
VANISHES = 4


def siamstream(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SIAMSTREAM, *args], capture_output=True, text=True, timeout=600)


def truth(target: int, index: int) -> tuple[float, float, float, float]:
    """Ground-truth box xywh (image px) of `target` in frame `index` of the two-target scene."""
    (x, y), (dx, dy) = STARTS[target], STEPS[target]
    return float(x + dx * index), float(y + dy * index), float(SIDE), float(SIDE)


def scene_frames(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(4)
    blocks = rng.integers(30, 110, size=(30, 40, 3), dtype=np.uint8)
    background = cv2.resize(blocks, (320, 240), interpolation=cv2.INTER_NEAREST)
    textures = [
        cv2.resize(rng.integers(120, 256, size=(6, 6, 3), dtype=np.uint8), (SIDE, SIDE)),
        cv2.resize(rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8), (SIDE, SIDE)),
    ]
    frames = []
    for index in range(count):
        frame = background.copy()
        for target, texture in enumerate(textures):
            if target == 1 and index >= VANISHES:
                continue
            x, y, _, _ = (int(v) for v in truth(target, index))
            frame[y : y + SIDE, x : x + SIDE] = texture
            cv2.rectangle(frame, (x, y), (x + SIDE - 1, y + SIDE - 1), (255, 255, 255), 1)
        frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def scene_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scene") / "two_targets.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), VIDEO_FPS, (320, 240))
    for frame in scene_frames(FRAMES):
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def scene_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("scene_frames")
    for index, frame in enumerate(scene_frames(FRAMES)):
        cv2.imwrite(str(folder / f"{index + 1:04d}.png"), frame)
    return folder


@pytest.fixture(scope="module")
def alex_package(tmp_path_factory: pytest.TempPathFactory) -> TrackerPackage:
    config = get_config("siamrpn_alex")
    return export_package(random_network(config), config, tmp_path_factory.mktemp("alex") / "siamrpn_alex")


@pytest.fixture(scope="module")
def strict_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo package with stricter status thresholds (post-processing only: the stages are the demo's).
    The demo scores its squares at 0.98 or more and the background, once a square is gone, below 0.66."""
    root = tmp_path_factory.mktemp("strict") / "demo"
    shutil.copytree(DEMO, root)
    meta = json.loads((root / "package.json").read_text())
    meta["config"]["status"] = {"tracking_above": 0.95, "lost_below": 0.7, "lost_after": 2}
    (root / "package.json").write_text(json.dumps(meta))
    return root


def box_argument(box: tuple[float, ...]) -> str:
    return ",".join(str(value) for value in box)


def iou(a: list[float], b: tuple[float, ...]) -> float:
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    overlap = max(right - left, 0.0) * max(bottom - top, 0.0)
    return overlap / (a[2] * a[3] + b[2] * b[3] - overlap)


def label_shown(annotated: np.ndarray, source: np.ndarray, labels: tuple[str, ...]) -> str:
    """Which of `labels`, drawn in white at the top left of `source` (where an annotated video puts the
    frame number), looks most like that corner of the decoded `annotated` frame."""
    corner = (slice(0, 32), slice(0, 64))

    def distance(label: str) -> float:
        drawn = source.copy()
        cv2.putText(drawn, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
        return float(np.abs(drawn[corner].astype(float) - annotated[corner]).mean())

    return min(labels, key=distance)


def alone(package: Path, frames: list[np.ndarray], box: tuple[float, ...]) -> list:
    """The boxes the offline single-target tracker gives for one target."""
    read = read_package(package)
    return OfflineTracker(read.config, PackageRunner(read)).track_sequence(frames, box)


def test_two_targets_are_each_tracked_as_alone_with_status_and_the_source_frame_rate(
    strict_demo: Path, scene_video: Path, tmp_path: Path
) -> None:
    out, annotated = tmp_path / "result.json", tmp_path / "annotated.mp4"
    completed = siamstream(
        "track",
        "--package",
        str(strict_demo),
        "--video",
        str(scene_video),
        "--box",
        box_argument(truth(0, 0)),
        "--box",
        box_argument(truth(1, 0)),
        "--out",
        str(out),
        "--annotated",
        str(annotated),
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(out.read_text())
    records = result["frames"]
    assert [(r["frame"], r["target"]) for r in records] == [(f, t) for f in range(FRAMES) for t in (0, 1)]
    assert records[0] == {
        "frame": 0,
        "bbox": list(truth(0, 0)),
        "best_score": None,
        "target": 0,
        "status": "tracking",
    }
    first, second = ([r for r in records if r["target"] == target] for target in (0, 1))
    # The trained demo tracker follows each square while it is there.
    assert min(iou(r["bbox"], truth(0, r["frame"])) for r in first) > 0.6
    assert min(iou(r["bbox"], truth(1, r["frame"])) for r in second[:VANISHES]) > 0.6
    # Status as the service gives it: the second square's frames score low once it is gone, the first
    # frame below tracking_above is UNCERTAIN, the second in a row below lost_below LOST.
    assert [r["status"] for r in first] == ["tracking"] * FRAMES
    assert [r["status"] for r in second] == (
        ["tracking"] * VANISHES + ["uncertain"] + ["lost"] * (FRAMES - VANISHES - 1)
    )
    decoded = list(iter_frames(scene_video))
    for target, mine in enumerate((first, second)):
        expected = alone(strict_demo, decoded, truth(target, 0))
        np.testing.assert_allclose([r["bbox"] for r in mine], [e.bbox for e in expected], atol=1e-3)
        assert [r["status"] for r in mine] == [e.status.value for e in expected]
    meta = result["meta"]
    assert meta["tracker"] == "siamfc_alexnet" and meta["targets"] == 2 and meta["frames"] == FRAMES
    assert meta["init_boxes"] == [list(truth(0, 0)), list(truth(1, 0))]
    assert meta["source_fps"] == VIDEO_FPS and meta["annotated_fps"] == VIDEO_FPS
    written = cv2.VideoCapture(str(annotated))
    assert written.get(cv2.CAP_PROP_FPS) == VIDEO_FPS
    assert int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    written.release()


def test_start_and_max_frames_pick_the_frames_tracked_from_a_folder(
    alex_package: TrackerPackage, scene_folder: Path, tmp_path: Path
) -> None:
    out, annotated = tmp_path / "result.json", tmp_path / "annotated.mp4"
    box = truth(0, 3)  # the box refers to the start frame
    completed = siamstream(
        "track",
        "--package",
        str(alex_package.root),
        "--video",
        str(scene_folder),
        "--box",
        box_argument(box),
        "--start",
        "3",
        "--max-frames",
        "4",
        "--out",
        str(out),
        "--annotated",
        str(annotated),
        "--fps",
        "7.5",
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(out.read_text())
    assert [r["frame"] for r in result["frames"]] == [3, 4, 5, 6]
    assert result["frames"][0]["bbox"] == list(box)
    expected = alone(alex_package.root, list(iter_frames(scene_folder))[3:7], box)
    np.testing.assert_allclose([r["bbox"] for r in result["frames"]], [e.bbox for e in expected], atol=1e-6)
    assert result["meta"]["start"] == 3 and result["meta"]["source_fps"] is None
    written = cv2.VideoCapture(str(annotated))
    assert written.get(cv2.CAP_PROP_FPS) == 7.5 and int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    _, first_written = written.read()
    written.release()
    # The label names the source's frame (#3), not the count since the tracker started (#0).
    assert label_shown(first_written, scene_frames(4)[3], ("#3", "#0")) == "#3"

    common = [
        "track",
        "--package",
        str(alex_package.root),
        "--video",
        str(scene_folder),
        "--box",
        "1,1,20,20",
    ]
    past_the_end = siamstream(*common, "--start", str(FRAMES), "--out", str(tmp_path / "none.json"))
    assert past_the_end.returncode == 2
    assert f"holds no frame at index {FRAMES}" in past_the_end.stderr


def test_hyperparameters_from_the_command_line(scene_folder: Path, tmp_path: Path) -> None:
    common = ["track", "--package", str(DEMO), "--video", str(scene_folder)]
    common += ["--box", box_argument(truth(0, 0)), "--max-frames", "5"]
    changes = {"window_influence": 0.6, "scale_lr": 0.1}
    settings = [argument for key, value in changes.items() for argument in ("--set", f"{key}={value}")]
    changed = siamstream(*common, *settings, "--out", str(tmp_path / "a"))
    assert changed.returncode == 0, changed.stderr
    result = json.loads((tmp_path / "a").read_text())
    assert result["meta"]["settings"] == changes
    hyper = result["meta"]["hyper"]
    assert (hyper["window_influence"], hyper["scale_lr"], hyper["scale_step"]) == (0.6, 0.1, 1.0375)
    demo = read_package(DEMO)
    frames = list(iter_frames(scene_folder))[:5]
    runner = PackageRunner(demo)
    expected = OfflineTracker(with_hyper(demo.config, changes), runner).track_sequence(frames, truth(0, 0))
    np.testing.assert_allclose([r["bbox"] for r in result["frames"]], [e.bbox for e in expected], atol=1e-6)
    default = OfflineTracker(demo.config, runner).track_sequence(frames, truth(0, 0))
    assert np.abs(np.array([e.bbox for e in expected]) - [e.bbox for e in default]).max() > 0.01

    unknown = siamstream(*common, "--set", "window=0.3", "--out", str(tmp_path / "b"))
    assert unknown.returncode == 2
    assert "unknown hyperparameter 'window' for siamfc_alexnet (siamfc); settable: " in unknown.stderr
    assert "window_influence" in unknown.stderr
    malformed = siamstream(*common, "--set", "scale_num=many", "--out", str(tmp_path / "c"))
    assert malformed.returncode == 2 and "scale_num='many'" in malformed.stderr
    assert "valid integer" in malformed.stderr
    other_family = siamstream(*common, "--preset", "siamcar_lasot", "--out", str(tmp_path / "d"))
    assert other_family.returncode == 2
    assert "preset 'siamcar_lasot' is for the siamcar family; siamfc_alexnet is siamfc" in other_family.stderr
    assert not any((tmp_path / name).exists() for name in "bcd")


def test_reference_config_names_select_the_tracker(
    alex_package: TrackerPackage, scene_folder: Path, tmp_path: Path
) -> None:
    common = ["--package", str(alex_package.root), "--video", str(scene_folder), "--max-frames", "2"]
    common += ["--box", "40,60,36,36"]
    aliased = siamstream("track", "--tracker", "siamrpn_alex_dwxcorr", *common, "--out", str(tmp_path / "a"))
    assert aliased.returncode == 0, aliased.stderr
    assert json.loads((tmp_path / "a").read_text())["meta"]["tracker"] == "siamrpn_alex"
    other = siamstream(
        "track", "--tracker", "siamrpn_r50_l234_dwxcorr", *common, "--out", str(tmp_path / "b")
    )
    assert other.returncode == 2
    assert "holds 'siamrpn_alex', not 'siamrpnpp_r50' (siamrpn_r50_l234_dwxcorr)" in other.stderr
    unknown = siamstream("track", "--tracker", "siamrpn_r18", *common, "--out", str(tmp_path / "c"))
    assert unknown.returncode == 2 and "unknown tracker 'siamrpn_r18'" in unknown.stderr
    assert "siamrpn_alex_dwxcorr" in unknown.stderr  # the accepted config names are listed


def test_import_checkpoint_takes_config_names_and_names_the_trackers_a_misfit_fits(tmp_path: Path) -> None:
    weights = tmp_path / "model.pth"
    torch.save(random_network(get_config("siamrpn_alex")).state_dict(), weights)
    importing = ["import-checkpoint", "--weights", str(weights)]
    imported = siamstream(*importing, "--tracker", "siamrpn_alex_dwxcorr", "--out", str(tmp_path / "package"))
    assert imported.returncode == 0, imported.stderr
    meta = read_package(tmp_path / "package").meta
    assert meta.tracker == "siamrpn_alex" and isinstance(meta.config.hyper, RPNHyper)
    assert (meta.config.hyper.penalty_k, meta.config.hyper.window_influence, meta.config.hyper.lr) == (
        0.16,
        0.40,
        0.30,
    )
    misfit = siamstream(*importing, "--tracker", "siamfc_alexnet", "--out", str(tmp_path / "wrong"))
    assert misfit.returncode == 2
    assert "weights do not fit tracker 'siamfc_alexnet'" in misfit.stderr
    assert misfit.stderr.rstrip().endswith("; it fits siamrpn_alex")
    assert not (tmp_path / "wrong" / "package.json").exists()


def test_a_camera_or_stream_that_does_not_open_is_a_clear_error(
    alex_package: TrackerPackage, tmp_path: Path
) -> None:
    common = ["track", "--package", str(alex_package.root), "--box", "1,1,20,20"]
    common += ["--out", str(tmp_path / "r")]
    port = free_port()  # nothing listens there
    url = f"rtsp://viewer:secret@127.0.0.1:{port}/scene?token=hunter2"
    refused = siamstream(*common, "--video", url, "--max-frames", "3")
    assert refused.returncode == 2
    assert f"rtsp://127.0.0.1:{port}/scene: cannot open stream" in refused.stderr
    assert "secret" not in refused.stderr and "hunter2" not in refused.stderr
    camera = siamstream(*common, "--video", "63", "--max-frames", "3")
    assert camera.returncode == 2 and "camera 63: cannot open camera" in camera.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(not rtsp_available(), reason=RTSP_MISSING)
def test_an_rtsp_stream_is_tracked_until_max_frames_or_its_end(
    alex_package: TrackerPackage, tmp_path: Path
) -> None:
    # A slow camera: a stream faster than the tracker piles up frames that the command still tracks (every
    # frame, as from a file) after the camera went away.
    camera = RtspCamera(free_port(), fps=2)
    camera.start()
    try:
        url = camera.url.replace("rtsp://", "rtsp://viewer:secret@")
        common = ["track", "--package", str(alex_package.root), "--video", url, "--box", "24,24,48,48"]
        unbounded = siamstream(*common, "--out", str(tmp_path / "unbounded.json"))
        assert unbounded.returncode == 2 and "is live and has no end: give --max-frames" in unbounded.stderr

        out, annotated = tmp_path / "bounded.json", tmp_path / "bounded.mp4"
        bounded = siamstream(*common, "--max-frames", "5", "--out", str(out), "--annotated", str(annotated))
        assert bounded.returncode == 0, bounded.stderr
        result = json.loads(out.read_text())
        assert [r["frame"] for r in result["frames"]] == [0, 1, 2, 3, 4]
        assert {r["status"] for r in result["frames"]} <= {"tracking", "uncertain", "lost"}
        assert result["meta"]["video"] == f"rtsp://127.0.0.1:{camera.port}/scene"
        assert "secret" not in out.read_text()
        assert result["meta"]["source_fps"] == 2.0
        written = cv2.VideoCapture(str(annotated))
        assert written.get(cv2.CAP_PROP_FPS) == 2.0
        written.release()

        # A stream that ends (the camera goes away) ends the command, with the frames it gave.
        ending = subprocess.Popen(
            [*SIAMSTREAM, *common, "--max-frames", "100000", "--out", str(tmp_path / "ended.json")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        progress = threading.Event()

        def watch() -> None:
            assert ending.stderr is not None
            seen = ""
            while chunk := ending.stderr.read(1):
                seen += chunk
                if any(int(count) >= 3 for count in re.findall(r"(\d+)frame", seen)):
                    progress.set()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        assert progress.wait(timeout=120), "the command tracked no frames"
        camera.kill()
        assert ending.wait(timeout=120) == 0
        watcher.join(timeout=10)
        ended = json.loads((tmp_path / "ended.json").read_text())
        assert 3 <= ended["meta"]["frames"] < 100000
    finally:
        camera.kill()
