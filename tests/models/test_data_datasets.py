"""Dataset readers on miniature copies of the OTB, LaSOT and GOT-10k layouts written by the tests."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from siamstream.data.annotations import AnnotationError, DatasetError
from siamstream.data.datasets import detect_layout, open_dataset


def write_images(folder: Path, count: int, digits: int) -> None:
    folder.mkdir(parents=True)
    for number in range(1, count + 1):
        cv2.imwrite(str(folder / f"{number:0{digits}d}.png"), np.full((12, 16, 3), number * 10, np.uint8))


def otb_sequence(root: Path, name: str, text: str, files=("groundtruth_rect.txt",)) -> None:
    write_images(root / name / "img", len(text.strip().splitlines()), 4)
    for file in files:
        (root / name / file).write_text(text)


def lasot_sequence(root: Path, name: str, boxes: str, occlusion: str, out_of_view: str) -> None:
    folder = root / name.rpartition("-")[0] / name
    write_images(folder / "img", len(boxes.strip().splitlines()), 8)
    (folder / "groundtruth.txt").write_text(boxes)
    (folder / "full_occlusion.txt").write_text(occlusion)
    (folder / "out_of_view.txt").write_text(out_of_view)


def got10k_sequence(root: Path, name: str, frames: int, boxes: str, absence: str | None = None) -> None:
    write_images(root / name, frames, 8)
    (root / name / "groundtruth.txt").write_text(boxes)
    if absence is not None:
        (root / name / "absence.label").write_text(absence)


def test_otb_reads_comma_tab_and_space_separators_and_two_target_sequences(tmp_path):
    otb_sequence(tmp_path, "Basketball", "198,214,34,81\n197,214,34,81\n")
    otb_sequence(tmp_path, "Car4", "70\t51\t107\t87\n71\t51\t107\t87\n")
    otb_sequence(tmp_path, "Deer", "306 5 95 65\n300 6 95 65\n")
    two_targets = ("groundtruth_rect.1.txt", "groundtruth_rect.2.txt")
    otb_sequence(tmp_path, "Jogging", "111,98,25,101\n", files=two_targets)
    assert detect_layout(tmp_path) == "otb"
    sequences = open_dataset(tmp_path)
    assert [s.name for s in sequences] == ["Basketball", "Car4", "Deer", "Jogging-1", "Jogging-2"]
    car = sequences[1]
    assert car.ground_truth.tolist() == [[70, 51, 107, 87], [71, 51, 107, 87]]
    assert car.visible is None
    assert [p.name for p in car.frame_paths] == ["0001.png", "0002.png"]
    frames = list(car.frames())
    assert frames[1].shape == (12, 16, 3) and frames[1].dtype == np.uint8 and frames[1][0, 0, 0] == 20
    assert sequences[2].ground_truth[1].tolist() == [300, 6, 95, 65]


def test_lasot_visibility_from_occlusion_and_out_of_view_flags(tmp_path):
    boxes = "10,10,5,5\n11,10,5,5\n12,10,5,5\n"
    lasot_sequence(tmp_path, "airplane-10", boxes, "0,0,0", "0,0,0")
    lasot_sequence(tmp_path, "airplane-2", boxes, "0,1,0", "0,0,1")
    lasot_sequence(tmp_path, "bird-1", boxes, "0,0,0", "0,0,0")
    assert detect_layout(tmp_path) == "lasot"
    sequences = open_dataset(tmp_path)
    assert [s.name for s in sequences] == ["airplane-2", "airplane-10", "bird-1"]
    assert sequences[0].visible.tolist() == [True, False, False]
    assert sequences[0].ground_truth[2].tolist() == [12, 10, 5, 5]
    assert len(sequences[0]) == 3


def test_got10k_list_order_absence_and_test_split(tmp_path):
    got10k_sequence(tmp_path, "GOT-10k_Val_000002", 3, "1,2,3,4\n2,2,3,4\n3,2,3,4\n", absence="0\n1\n0\n")
    got10k_sequence(tmp_path, "GOT-10k_Test_000001", 3, "5.5,6.5,7.5,8.5\n")
    (tmp_path / "list.txt").write_text("GOT-10k_Val_000002\nGOT-10k_Test_000001\n")
    assert detect_layout(tmp_path) == "got10k"
    val, test = open_dataset(tmp_path)
    assert val.name == "GOT-10k_Val_000002"
    assert val.visible.tolist() == [True, False, True]
    assert test.visible is None
    assert test.init_box.tolist() == [5.5, 6.5, 7.5, 8.5]
    assert np.isnan(test.ground_truth[1:]).all() and test.ground_truth.shape == (3, 4)


def test_a_malformed_line_is_reported_with_file_and_line(tmp_path):
    otb_sequence(tmp_path, "Boy", "1,2,3,4\n1,2,3\n5,6,7,8\n")
    with pytest.raises(AnnotationError, match=r"Boy/groundtruth_rect\.txt, line 2: expected 4 numbers"):
        open_dataset(tmp_path)


def test_a_non_numeric_box_is_reported(tmp_path):
    got10k_sequence(tmp_path, "seq", 2, "1,2,3,4\n1,2,x,4\n")
    with pytest.raises(AnnotationError, match="line 2"):
        open_dataset(tmp_path, "got10k")


def test_bad_flags_are_reported(tmp_path):
    lasot_sequence(tmp_path / "a", "cat-1", "1,1,2,2\n1,1,2,2\n", "0,2", "0,0")
    with pytest.raises(AnnotationError, match=r"full_occlusion\.txt, line 1: expected flags 0 or 1, got '2'"):
        open_dataset(tmp_path / "a")
    lasot_sequence(tmp_path / "b", "dog-1", "1,1,2,2\n1,1,2,2\n", "0", "0,0")
    with pytest.raises(AnnotationError, match="1 flags for 2 frames"):
        open_dataset(tmp_path / "b")


def test_box_and_frame_counts_must_agree(tmp_path):
    otb_sequence(tmp_path, "Car", "1,2,3,4\n1,2,3,4\n")
    (tmp_path / "Car" / "img" / "0003.png").write_bytes((tmp_path / "Car" / "img" / "0001.png").read_bytes())
    with pytest.raises(DatasetError, match="2 boxes for 3 frames of sequence 'Car'"):
        open_dataset(tmp_path)


def test_listed_sequence_must_exist(tmp_path):
    (tmp_path / "list.txt").write_text("missing\n")
    with pytest.raises(DatasetError, match="lists 'missing'"):
        open_dataset(tmp_path)


def test_unknown_or_missing_dataset(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DatasetError, match="unknown dataset layout"):
        open_dataset(tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        open_dataset(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="no sequences in otb layout"):
        open_dataset(tmp_path, "otb")
