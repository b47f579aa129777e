"""GOT-10k's AO, SR0.50, SR0.75, speed and result files, against values worked out by hand from the
toolkit's definitions (got-10k/toolkit `experiments/got10k.py`, `utils/metrics.py`)."""

import zipfile
from pathlib import Path

import numpy as np
import pytest

from siamstream.data.sequence import Sequence
from siamstream.evaluation.got10k import (
    Got10kScores,
    frame_speeds,
    got10k_ious,
    write_got10k_run,
    zip_submission,
)
from siamstream.evaluation.runner import evaluate, evaluate_results

# Image 100 x 80. Frame 0 is the initialisation; frame 2 is invisible (cover 0).
TRUTH = np.array(
    [
        [10, 10, 20, 20],
        [10, 10, 20, 20],
        [50, 40, 20, 20],
        [90, 70, 20, 20],  # crosses the right and bottom edges: clipped to 10 x 10
        [30, 30, 20, 20],
        [10, 10, 20, 20],
    ],
    dtype=np.float64,
)
VISIBLE = np.array([True, True, False, True, True, True])
PREDICTED = np.array(
    [
        [60, 60, 5, 5],  # frame 0: never scored, however wrong
        [20, 10, 20, 20],  # 10x20 overlap of two 20x20 boxes: 200 / 600 = 1/3
        [0, 0, 1, 1],  # invisible frame: not scored
        [95, 75, 20, 20],  # clipped to 5x5 inside the clipped 10x10 truth: 25 / 100 = 0.25
        [30, 30, 20, 20],  # exact: 1
        [10, 10, 20, 12],  # 240 / 400 = 0.6
    ],
    dtype=np.float64,
)
IOUS = [1 / 3, 0.25, 1.0, 0.6]


def sequence(name: str = "GOT-10k_Val_000001", truth: np.ndarray = TRUTH) -> Sequence:
    frames = tuple(Path(f"{number:08d}.jpg") for number in range(1, len(truth) + 1))
    return Sequence(name, frames, truth, visible=VISIBLE[: len(truth)], image_size=(100, 80))


def test_ious_leave_out_frame_0_and_invisible_frames_and_clip_to_the_image():
    ious = got10k_ious(TRUTH, PREDICTED, VISIBLE, image_size=(100, 80))
    np.testing.assert_allclose(ious, IOUS, rtol=1e-12)
    # Without the image size the boxes are not clipped: 15x15 = 225 over 400 + 400 - 225.
    assert got10k_ious(TRUTH, PREDICTED, VISIBLE)[1] == pytest.approx(225 / 575)


def test_ao_and_success_rates_use_strict_thresholds():
    scores = Got10kScores.from_ious(np.array(IOUS))
    assert scores.frames == 4
    assert scores.ao == pytest.approx((1 / 3 + 0.25 + 1.0 + 0.6) / 4)
    assert (scores.sr50, scores.sr75) == (0.5, 0.25)
    at_threshold = Got10kScores.from_ious(np.array([0.5, 0.75]))
    assert (at_threshold.sr50, at_threshold.sr75) == (0.5, 0.0)


def test_speeds_are_the_inverse_positive_times():
    speeds = frame_speeds(np.array([0.5, 0.1, 0.2, -1.0, np.nan, 0.0]))
    np.testing.assert_allclose(speeds, [2, 10, 5], rtol=1e-12)
    assert frame_speeds(np.array([0.0])).size == 0


def test_overall_speed_of_saved_results_pools_the_timed_frames(tmp_path):
    tracker_dir = tmp_path / "SiamX"
    # Speeds 2, 10, 5, 4, 2, 10 (sum 33) and, over 3 frames one untimed, 4, 2 (sum 6).
    write_got10k_run(tracker_dir, "GOT-10k_Val_000001", PREDICTED, np.array([0.5, 0.1, 0.2, 0.25, 0.5, 0.1]))
    write_got10k_run(tracker_dir, "GOT-10k_Val_000002", PREDICTED[:3], np.array([0.25, 0.5, 0.0]))
    short = sequence("GOT-10k_Val_000002", TRUTH[:3])
    report = evaluate_results([sequence(), short], tracker_dir)
    assert [row.fps for row in report.sequences] == pytest.approx([5.5, 3.0])
    assert [row.timed_frames for row in report.sequences] == [6, 2]
    # The toolkit's mean of 1 / t over the 8 timed frames pooled, not the mean of 5.5 and 3 (4.25).
    assert report.fps == pytest.approx(39 / 8)
    assert report.overall()["fps"] == pytest.approx(39 / 8)


def test_overall_ao_pools_frames_of_all_sequences():
    short = sequence("GOT-10k_Val_000002", TRUTH[:2])  # one scored frame, IoU 1/3
    report = evaluate([sequence(), short], lambda s: PREDICTED[: len(s)].copy(), "t", progress=False)
    assert [row.ao_frames for row in report.sequences] == [4, 1]
    assert report.ao == pytest.approx((sum(IOUS) + 1 / 3) / 5)  # not the mean of the two sequences' AO
    assert report.sr50 == pytest.approx(2 / 5) and report.sr75 == pytest.approx(1 / 5)


def test_results_written_in_the_toolkits_layout_are_read_back_and_zipped(tmp_path):
    tracker_dir = tmp_path / "results" / "GOT-10k" / "SiamX"
    seconds = np.array([0.5, 0.1, 0.2, 0.25, 0.5, 0.1])
    folder = write_got10k_run(tracker_dir, "GOT-10k_Val_000001", PREDICTED, seconds)
    assert folder == tracker_dir / "GOT-10k_Val_000001"
    first = (folder / "GOT-10k_Val_000001_001.txt").read_text().splitlines()
    assert first[0] == "60.000,60.000,5.000,5.000" and len(first) == 6
    assert (folder / "GOT-10k_Val_000001_time.txt").read_text().splitlines()[1] == "0.10000000"
    report = evaluate_results([sequence()], tracker_dir)
    (row,) = report.sequences
    assert report.tracker == "SiamX" and row.ao == pytest.approx(np.mean(IOUS))
    assert row.fps == pytest.approx(np.mean(1 / seconds))
    archive = zip_submission(tracker_dir)
    assert archive == tracker_dir.with_suffix(".zip")
    with zipfile.ZipFile(archive) as opened:
        names = {name.rstrip("/") for name in opened.namelist()}
    assert {
        "GOT-10k_Val_000001/GOT-10k_Val_000001_001.txt",
        "GOT-10k_Val_000001/GOT-10k_Val_000001_time.txt",
    } <= names


def test_repeated_runs_pool_their_ious(tmp_path):
    folder = tmp_path / "SiamX" / "GOT-10k_Val_000001"
    folder.mkdir(parents=True)
    np.savetxt(folder / "GOT-10k_Val_000001_001.txt", PREDICTED, fmt="%.3f", delimiter=",")
    np.savetxt(folder / "GOT-10k_Val_000001_002.txt", TRUTH, fmt="%.3f", delimiter=",")  # IoU 1 everywhere
    (row,) = evaluate_results([sequence()], tmp_path / "SiamX").sequences
    assert row.ao_frames == 8 and row.ao == pytest.approx((sum(IOUS) + 4) / 8)
    assert row.fps is None  # no time file
    # OPE scores the first run: of the 5 visible frames (frame 0 included) only frame 0 is off by > 20 px.
    assert row.precision == pytest.approx(4 / 5)
