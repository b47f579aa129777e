"""The tracking loops of `siamstream eval` on written GOT-10k sequences: one pass, and the reset protocol
with its report, with a scripted tracker that reads each frame's number from its pixels."""

from __future__ import annotations

import json
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from siamstream.data.datasets import open_dataset
from siamstream.evaluation.one_pass import track_boxes
from siamstream.evaluation.reset_report import reset_report, track_with_resets

FRAMES = 30
FAR_AWAY = (500.0, 500.0, 20.0, 20.0)


@dataclass
class Result:
    bbox: tuple[float, ...]


class FrameReadingTracker:
    """Returns the ground truth of the frame it is shown (its number is the first pixel's value), except on
    the `failing` frames; records the frames it is started and stepped on."""

    def __init__(self, truth: np.ndarray, failing: set[int]) -> None:
        self.truth, self.failing = truth, failing
        self.calls: list[tuple[str, int]] = []

    def init(self, frame: np.ndarray, box: tuple[float, ...]) -> Result:
        self.calls.append(("init", int(frame[0, 0, 0])))
        return Result(box)

    def track(self, frame: np.ndarray) -> Result:
        index = int(frame[0, 0, 0])
        self.calls.append(("track", index))
        return Result(FAR_AWAY if index in self.failing else tuple(self.truth[index]))


@pytest.fixture(scope="module")
def sequence(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("got10k")
    folder = root / "GOT-10k_Val_000001"
    folder.mkdir()
    for index in range(FRAMES):
        cv2.imwrite(str(folder / f"{index + 1:08d}.png"), np.full((60, 80, 3), index, np.uint8))
    truth = np.array([[10.0 + index, 10.0, 20.0, 20.0] for index in range(FRAMES)])
    np.savetxt(folder / "groundtruth.txt", truth, fmt="%.1f", delimiter=",")
    (root / "list.txt").write_text("GOT-10k_Val_000001\n")
    (loaded,) = open_dataset(root)
    return loaded


def test_one_pass_starts_on_frame_0_and_steps_through_every_frame(sequence) -> None:
    tracker = FrameReadingTracker(sequence.ground_truth, failing={3})
    ticks = iter(np.arange(0.0, 100.0, 0.5))
    seconds: list[float] = []
    boxes = track_boxes(tracker, sequence.frames(), sequence.init_box, seconds, clock=lambda: next(ticks))
    assert tracker.calls == [("init", 0)] + [("track", index) for index in range(1, FRAMES)]
    assert boxes.dtype == np.float64 and boxes.shape == (FRAMES, 4)
    np.testing.assert_array_equal(boxes[3], FAR_AWAY)
    np.testing.assert_array_equal(np.delete(boxes, 3, axis=0), np.delete(sequence.ground_truth, 3, axis=0))
    assert seconds == [0.5] * FRAMES


def test_reset_protocol_restarts_five_frames_after_a_failure(sequence) -> None:
    tracker = FrameReadingTracker(sequence.ground_truth, failing={12})
    run = track_with_resets(tracker, sequence)
    # Failure on frame 12; frames 13..16 skipped; restarted on frame 17 at the ground truth.
    assert tracker.calls[:13] == [("init", 0)] + [("track", index) for index in range(1, 13)]
    assert tracker.calls[13:] == [("init", 17)] + [("track", index) for index in range(18, FRAMES)]
    report = reset_report("scripted", [(sequence, run)], eao_range=(1, 12))
    (row,) = report.sequences
    assert row.failures == 1
    # Accuracy frames: 11 and 12 after the first start (burn-in 0..10), 28 and 29 after the second
    # (17..27): IoUs 1, 0, 1, 1.
    assert row.accuracy_frames == 4 and row.accuracy == pytest.approx(0.75)
    # Segments: frames 1..12 (eleven 1s then the failure's 0) and 18..29 (twelve 1s, reaching the end).
    # EAO curve: 1 for lengths 1..11; (11/12 + 1) / 2 for length 12; its mean over 1..12:
    assert report.eao == pytest.approx((11 + (11 / 12 + 1) / 2) / 12)
    data = json.loads(report.to_json())
    assert data["overall"] == {
        "sequences": 1,
        "failures": 1,
        "accuracy": pytest.approx(0.75),
        "eao": pytest.approx(report.eao),
        "eao_range": [1, 12],
    }
    assert report.to_text().splitlines()[-1] == f"EAO over segment lengths 1..12: {report.eao:.3f}"


def test_reset_report_lists_sequences_without_ground_truth_as_unscored(sequence) -> None:
    report = reset_report("scripted", [(sequence, None)], eao_range=(1, 10))
    assert report.unscored == [sequence.name] and report.sequences == []
    assert report.accuracy is None and report.eao is None and report.failures == 0
    assert report.to_text().splitlines() == [
        "Tracker: scripted (reset protocol)",
        "Sequence  Frames  Failures  Accuracy",
        "------------------------------------",
        "------------------------------------",
        "Overall        0         0         -",
        "EAO over segment lengths 1..10: -",
        "Unscored (no ground truth after frame 0): 1 sequences",
    ]
