"""The OPE runner, saved-result evaluation and the report's table and JSON."""

import json
from itertools import count
from pathlib import Path

import numpy as np
import pytest

from siamstream.data.annotations import DatasetError
from siamstream.data.sequence import Sequence
from siamstream.data.synthetic import SequenceSpec, generate_sequence
from siamstream.evaluation.runner import evaluate, evaluate_results


def make_sequences():
    plain = generate_sequence(SequenceSpec(name="plain", width=160, height=120, length=8, seed=1))
    truth = np.tile([10.0, 10.0, 20.0, 20.0], (4, 1))
    absent = Sequence(
        name="absent",
        frame_paths=tuple(Path(f"{n}.jpg") for n in range(4)),
        ground_truth=truth,
        visible=np.array([True, True, False, False]),
    )
    return [plain, absent]


def perfect_tracker(sequence):
    return sequence.ground_truth.copy()


def test_perfect_tracker_scores_the_maximum_and_speed_comes_from_the_clock():
    ticks = count(step=2.0)  # every call of the clock advances 2 s
    report = evaluate(make_sequences(), perfect_tracker, "oracle", progress=False, clock=lambda: next(ticks))
    assert report.tracker == "oracle"
    assert [row.name for row in report.sequences] == ["plain", "absent"]
    assert [row.scored_frames for row in report.sequences] == [8, 2]
    assert report.success_auc == pytest.approx(20 / 21)
    assert report.precision == 1.0 and report.norm_precision == 1.0
    assert [row.fps for row in report.sequences] == [4.0, 2.0]
    assert report.fps == pytest.approx(12 / 4)


def test_overall_figures_are_means_over_sequences():
    def half_wrong(sequence):
        predicted = sequence.ground_truth.copy()
        if sequence.name == "absent":
            predicted[1] += [100, 100, 0, 0]  # one of its two scored frames lost
        return predicted

    report = evaluate(make_sequences(), half_wrong, "half", progress=False)
    assert report.sequences[1].precision == 0.5
    assert report.precision == pytest.approx((1.0 + 0.5) / 2)


def test_wrong_prediction_shape_names_the_sequence():
    with pytest.raises(ValueError, match=r"sequence 'plain': expected predicted boxes of shape \(8, 4\)"):
        evaluate(make_sequences(), lambda sequence: np.zeros((3, 4)), "broken", progress=False)


def test_progress_bar_goes_to_stderr(capsys):
    evaluate(make_sequences()[:1], perfect_tracker, "oracle", progress=True)
    captured = capsys.readouterr()
    assert "oracle" in captured.err and "1/1" in captured.err


def test_saved_results_in_pysot_layout(tmp_path):
    sequences = make_sequences()
    folder = tmp_path / "results" / "OTB100" / "SiamX"
    folder.mkdir(parents=True)
    shifted = sequences[0].ground_truth + np.array([30.0, 0, 0, 0])
    np.savetxt(folder / "plain.txt", shifted, delimiter=",", fmt="%.2f")
    np.savetxt(folder / "absent.txt", sequences[1].ground_truth, delimiter=",", fmt="%.2f")
    report = evaluate_results(sequences, folder)
    assert report.tracker == "SiamX"
    assert report.sequences[0].precision == 0.0 and report.sequences[1].precision == 1.0
    assert report.fps is None
    (folder / "absent.txt").unlink()
    with pytest.raises(DatasetError, match="no result file for sequence 'absent'"):
        evaluate_results(sequences, folder, tracker_name="SiamX")


def test_report_renders_text_and_json():
    report = evaluate(make_sequences(), perfect_tracker, "oracle", progress=False)
    text = report.to_text()
    assert text.splitlines()[0] == "Tracker: oracle"
    assert "plain" in text and "absent" in text
    overall = text.splitlines()[-1].split()
    assert overall[:3] == ["Overall", "12", "0.952"]
    data = json.loads(report.to_json())
    assert data["tracker"] == "oracle"
    assert data["overall"]["success_auc"] == pytest.approx(20 / 21)
    assert data["sequences"][1]["scored_frames"] == 2
    assert len(data["sequences"][0]["success_curve"]) == 21
    assert len(data["sequences"][0]["norm_precision_curve"]) == 51


def test_a_sequence_with_only_its_first_box_is_unscored_not_perfect():
    # GOT-10k's test split publishes the first box only: scoring frame 0 would give AUC 20/21.
    truth = np.vstack([[10.0, 10.0, 20.0, 20.0], np.full((3, 4), np.nan)])
    test = Sequence("GOT-10k_Test_000001", tuple(Path(f"{n}.jpg") for n in range(4)), truth)
    plain = make_sequences()[0]
    tracked = []

    def tracker(sequence):
        tracked.append(sequence.name)
        return np.tile(sequence.init_box, (len(sequence), 1))

    report = evaluate([test, plain], tracker, "t", progress=False)
    assert tracked == ["GOT-10k_Test_000001", "plain"]  # tracked, so its results can be submitted
    assert report.unscored == ["GOT-10k_Test_000001"]
    assert [row.name for row in report.sequences] == ["plain"]
    only_test = evaluate([test], tracker, "t", progress=False)
    data = json.loads(only_test.to_json())
    assert data["unscored"] == ["GOT-10k_Test_000001"] and data["sequences"] == []
    assert data["overall"]["success_auc"] is None and data["overall"]["ao"] is None
    assert "Unscored (no ground truth after frame 0): 1 sequences" in only_test.to_text()


def test_figures_per_attribute_are_means_over_the_sequences_with_it():
    truth = np.tile([10.0, 10.0, 20.0, 20.0], (3, 1))
    paths = tuple(Path(f"{n}.jpg") for n in range(3))
    sequences = [
        Sequence("a", paths, truth, attributes=("IV",)),
        Sequence("b", paths, truth, attributes=("IV", "OCC")),
        Sequence("c", paths, truth),
    ]

    def lost_on_b(sequence):
        predicted = sequence.ground_truth.copy()
        if sequence.name == "b":
            predicted[1:] += [100, 0, 0, 0]  # frames 1 and 2 lost: precision 1/3
        return predicted

    data = json.loads(evaluate(sequences, lost_on_b, "t", progress=False).to_json())
    assert sorted(data["attributes"]) == ["IV", "OCC"]
    assert data["attributes"]["IV"]["sequences"] == 2
    assert data["attributes"]["IV"]["precision"] == pytest.approx((1 + 1 / 3) / 2)
    assert data["attributes"]["OCC"]["precision"] == pytest.approx(1 / 3)
    assert data["attributes"]["OCC"]["ao"] == 0.0  # its two scored frames (1, 2) do not overlap
    assert data["sequences"][1]["attributes"] == ["IV", "OCC"]


def test_saved_results_named_as_on_the_otb_site_are_found(tmp_path):
    truth = np.tile([10.0, 10.0, 20.0, 20.0], (2, 1))
    paths = (Path("1.jpg"), Path("2.jpg"))
    sequences = [Sequence("Jogging-1", paths, truth), Sequence("FleetFace", paths, truth)]
    np.savetxt(tmp_path / "jogging_1.txt", truth, delimiter=",")
    np.savetxt(tmp_path / "fleetface.txt", truth, delimiter=",")
    report = evaluate_results(sequences, tmp_path, tracker_name="Struck")
    assert [row.precision for row in report.sequences] == [1.0, 1.0]
