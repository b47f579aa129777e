"""The six tasks of docs/toolkits.md (track a video, track three objects in it, import published weights by
their published name, evaluate a GOT-10k folder, score existing results, serve and stream a video), run
exactly as the doc shows them: each block marked `<!-- task: NAME -->` is read from the doc and run in a
working folder that holds what it names (`video.mp4`, `models/packages/demo`, the data), generated here.

The video is three textured squares crossing a textured background, the scene the trained demo package
follows; the datasets and saved results have boxes chosen here, so the scores are known in advance.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from siamstream.benchmark.tracker import random_network
from siamstream.config import RPNHyper
from siamstream.package import read_package
from siamstream.registry import get_config
from siamstream_services.testing.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "toolkits.md"
DEMO = ROOT / "models" / "packages" / "demo"  # siamfc_alexnet, trained on textured squares
TASK_BLOCK = re.compile(
    r"<!-- task: (?P<task>[\w-]+) -->\n```(?P<language>sh|python)\n(?P<body>.*?)```", re.S
)
TASKS = {
    "track-video": "sh",
    "track-video-python": "python",
    "track-three": "sh",
    "track-three-python": "python",
    "import-weights": "sh",
    "evaluate-got10k": "sh",
    "score-results": "sh",
    "serve-and-stream": "sh",
}
DOC_ADDRESS = "127.0.0.1:50051"  # the service block's address; the test serves on a free port instead
SIDE = 36
FRAMES = 8
# The boxes the doc gives: three squares, each moving by its step per frame.
STARTS = ((40, 60), (220, 40), (120, 160))
STEPS = ((6, 1), (-3, 5), (4, -3))
FLOAT = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")


def doc_blocks() -> dict[str, tuple[str, str]]:
    """Task name -> (language, body) of every marked block of docs/toolkits.md."""
    return {
        match["task"]: (match["language"], match["body"]) for match in TASK_BLOCK.finditer(DOC.read_text())
    }


def truth(target: int, index: int) -> tuple[float, float, float, float]:
    """Box xywh (image px) of square `target` in frame `index`."""
    (x, y), (dx, dy) = STARTS[target], STEPS[target]
    return float(x + dx * index), float(y + dy * index), float(SIDE), float(SIDE)


def iou(a: list[float] | tuple[float, ...], b: list[float] | tuple[float, ...]) -> float:
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    overlap = max(right - left, 0.0) * max(bottom - top, 0.0)
    return overlap / (a[2] * a[3] + b[2] * b[3] - overlap)


def write_scene(path: Path) -> None:
    rng = np.random.default_rng(4)
    blocks = rng.integers(30, 110, size=(30, 40, 3), dtype=np.uint8)
    background = cv2.resize(blocks, (320, 240), interpolation=cv2.INTER_NEAREST)
    textures = [
        cv2.resize(rng.integers(120, 256, size=(6, 6, 3), dtype=np.uint8), (SIDE, SIDE)) for _ in STARTS
    ]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (320, 240))
    for index in range(FRAMES):
        frame = background.copy()
        for target, texture in enumerate(textures):
            x, y, _, _ = (int(value) for value in truth(target, index))
            frame[y : y + SIDE, x : x + SIDE] = texture
            cv2.rectangle(frame, (x, y), (x + SIDE - 1, y + SIDE - 1), (255, 255, 255), 1)
        writer.write(frame)
    writer.release()


def write_boxes(path: Path, boxes: Sequence[tuple[float, ...]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(",".join(f"{value:g}" for value in box) + "\n" for box in boxes))


def write_images(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(count)
    for number in range(1, count + 1):
        cv2.imwrite(str(folder / f"{number:04d}.jpg"), rng.integers(0, 256, (96, 128, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the doc's `video.mp4` and `models/packages/demo`."""
    folder = tmp_path_factory.mktemp("toolkit_tasks")
    write_scene(folder / "video.mp4")
    (folder / "models" / "packages").mkdir(parents=True)
    (folder / "models" / "packages" / "demo").symlink_to(DEMO)
    return folder


def shell_environment(**settings: str) -> dict[str, str]:
    """This environment with the virtualenv's `siamstream` first on PATH and no inherited service settings."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("SIAMSTREAM_")}
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment['PATH']}"
    return environment | settings


def run_block(task: str, cwd: Path, **settings: str) -> list[str]:
    """Run the doc's block for `task` in `cwd`; returns the stdout of each command (a Python block is one).

    Shell lines run one by one; a line ending in `&` runs in the background until the block has run.
    """
    language, body = doc_blocks()[task]
    environment = shell_environment(**settings)
    if language == "python":
        return [run_checked([sys.executable, "-c", body], cwd, environment)]
    # The service listens where the test says (a free port), and the client calls it there.
    lines = body.replace(DOC_ADDRESS, settings.get("SIAMSTREAM_LISTEN_ADDRESS", DOC_ADDRESS)).splitlines()
    background: list[subprocess.Popen] = []
    outputs = []
    try:
        for line in lines:
            if line.endswith("&"):
                command = ["bash", "-c", line.removesuffix("&")]
                background.append(subprocess.Popen(command, cwd=cwd, env=environment, start_new_session=True))
            else:
                outputs.append(run_checked(["bash", "-c", line], cwd, environment))
    finally:
        for process in background:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)
    return outputs


def run_checked(command: list[str], cwd: Path, environment: dict[str, str]) -> str:
    completed = subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, f"{command[-1]}\n{completed.stderr}"
    return completed.stdout


def test_the_doc_shows_every_task_in_one_command_or_ten_lines_of_python() -> None:
    blocks = doc_blocks()
    assert {task: language for task, (language, _) in blocks.items()} == TASKS
    for task, (language, body) in blocks.items():
        lines = [line for line in body.splitlines() if line.strip()]
        assert len(lines) <= (10 if language == "python" else 3), task


def test_track_a_video(workdir: Path) -> None:
    run_block("track-video", workdir)
    result = json.loads((workdir / "result.json").read_text())
    assert [record["frame"] for record in result["frames"]] == list(range(FRAMES))
    assert result["frames"][0]["bbox"] == list(truth(0, 0))
    assert min(iou(record["bbox"], truth(0, record["frame"])) for record in result["frames"]) > 0.6
    assert {record["status"] for record in result["frames"]} == {"tracking"}
    written = cv2.VideoCapture(str(workdir / "tracked.mp4"))
    assert int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    written.release()


def test_track_a_video_in_python(workdir: Path) -> None:
    (printed,) = run_block("track-video-python", workdir)
    lines = printed.splitlines()
    assert len(lines) == FRAMES - 1  # one per frame after the init frame
    for index, line in enumerate(lines, start=1):
        box = [float(value) for value in FLOAT.findall(line)[:4]]
        assert iou(box, truth(0, index)) > 0.6
        assert line.endswith(" tracking")


def test_track_three_objects(workdir: Path) -> None:
    run_block("track-three", workdir)
    records = json.loads((workdir / "three.json").read_text())["frames"]
    assert [(r["frame"], r["target"]) for r in records] == [(f, t) for f in range(FRAMES) for t in range(3)]
    assert min(iou(r["bbox"], truth(r["target"], r["frame"])) for r in records) > 0.6


def test_track_three_objects_in_python(workdir: Path) -> None:
    (printed,) = run_block("track-three-python", workdir)
    lines = printed.splitlines()
    assert len(lines) == FRAMES - 1
    for index, line in enumerate(lines, start=1):
        numbers = [float(value) for value in FLOAT.findall(line)]
        assert len(numbers) == 12  # three boxes
        for target in range(3):
            assert iou(numbers[4 * target : 4 * target + 4], truth(target, index)) > 0.6
        assert line.count("tracking") == 3


def test_import_published_weights_by_their_published_name(tmp_path: Path) -> None:
    # pysot publishes SiamRPN++ AlexNet as experiments/siamrpn_alex_dwxcorr/model.pth; a random network of
    # the registered tracker, saved under that name, stands for the download.
    weights = tmp_path / "siamrpn_alex_dwxcorr" / "model.pth"
    weights.parent.mkdir()
    torch.save(random_network(get_config("siamrpn_alex")).state_dict(), weights)
    run_block("import-weights", tmp_path)
    package = read_package(tmp_path / "packages" / "siamrpn_alex")
    assert package.meta.tracker == "siamrpn_alex"
    assert package.meta.source.sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    # The TRACK values of pysot's experiments/siamrpn_alex_dwxcorr/config.yaml.
    hyper = package.meta.config.hyper
    assert isinstance(hyper, RPNHyper)
    assert (hyper.penalty_k, hyper.window_influence, hyper.lr) == (0.16, 0.40, 0.30)


def test_evaluate_a_got10k_folder_and_make_the_submission(workdir: Path) -> None:
    # GOT-10k/val: two sequences with every box; GOT-10k/test: one with the first box only, as published.
    # Each is the scene's first square, on the frames of the video.
    frames = []
    capture = cv2.VideoCapture(str(workdir / "video.mp4"))
    while (read := capture.read())[0]:
        frames.append(read[1])
    capture.release()
    sequences = {"val": ["GOT-10k_Val_000001", "GOT-10k_Val_000002"], "test": ["GOT-10k_Test_000001"]}
    for split, names in sequences.items():
        for name in names:
            folder = workdir / "GOT-10k" / split / name
            folder.mkdir(parents=True)
            for number, frame in enumerate(frames, start=1):
                cv2.imwrite(str(folder / f"{number:08d}.png"), frame)
            boxes = [truth(0, index) for index in range(FRAMES)]
            write_boxes(folder / "groundtruth.txt", boxes if split == "val" else boxes[:1])
        (workdir / "GOT-10k" / split / "list.txt").write_text("".join(f"{name}\n" for name in names))
    run_block("evaluate-got10k", workdir)

    report = json.loads((workdir / "eval-val" / "siamfc_alexnet.json").read_text())
    assert report["overall"]["sequences"] == 2
    # AO as the toolkit defines it: the mean IoU over frames 1..N-1 of every run, pooled.
    ious = []
    for name in sequences["val"]:
        run = np.loadtxt(
            workdir / "eval-val" / "results" / "siamfc_alexnet" / name / f"{name}_001.txt", delimiter=","
        )
        assert run.shape == (FRAMES, 4)
        ious += [iou(run[index], truth(0, index)) for index in range(1, FRAMES)]
    assert report["overall"]["ao"] == pytest.approx(np.mean(ious), abs=1e-3)
    assert report["overall"]["ao"] > 0.6

    test_report = json.loads((workdir / "eval-test" / "siamfc_alexnet.json").read_text())
    assert test_report["unscored"] == ["GOT-10k_Test_000001"]
    with zipfile.ZipFile(workdir / "eval-test" / "results" / "siamfc_alexnet.zip") as submission:
        assert sorted(submission.namelist()) == [
            "GOT-10k_Test_000001/",
            "GOT-10k_Test_000001/GOT-10k_Test_000001_001.txt",
            "GOT-10k_Test_000001/GOT-10k_Test_000001_time.txt",
        ]


def test_score_existing_results(tmp_path: Path) -> None:
    # OTB100 with two sequences of 5 frames, boxes 60x40 px; pysot's saved results for tracker `model`:
    # the first frame exact, every later one shifted right by half the box width.
    count, results = 5, tmp_path / "results" / "OTB100" / "model"
    for name in ("Basketball", "Car4"):
        truth_boxes = [(10.0 + 5 * index, 20.0, 60.0, 40.0) for index in range(count)]
        write_images(tmp_path / "OTB100" / name / "img", count)
        write_boxes(tmp_path / "OTB100" / name / "groundtruth_rect.txt", truth_boxes)
        saved = truth_boxes[:1] + [(x + 30.0, y, w, h) for x, y, w, h in truth_boxes[1:]]
        write_boxes(results / f"{name}.txt", saved)
    run_block("score-results", tmp_path)
    overall = json.loads((tmp_path / "scores" / "model.json").read_text())["overall"]
    # A half-width shift overlaps 30x40 px of a 90x40 px union: IoU 1/3, above 7 of the 21 success
    # thresholds (0 ... 0.30); the exact first frame is above 20 (all but 1.0).
    assert overall["success_auc"] == pytest.approx((20 + 4 * 7) / (5 * 21))
    assert overall["precision"] == pytest.approx(1 / 5)  # the shifted centres are 30 px off: above 20 px
    assert overall["ao"] == pytest.approx(1 / 3)  # GOT-10k's AO leaves the first frame out
    assert overall["sr50"] == 0.0


def test_serve_and_stream_a_video(workdir: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    run_block("serve-and-stream", workdir, SIAMSTREAM_LISTEN_ADDRESS=address, SIAMSTREAM_METRICS_PORT="0")
    served = json.loads((workdir / "served.json").read_text())["frames"]
    assert [record["frame"] for record in served] == list(range(FRAMES))
    assert min(iou(record["bbox"], truth(0, record["frame"])) for record in served) > 0.6
    assert {record["status"] for record in served} == {"tracking"}
