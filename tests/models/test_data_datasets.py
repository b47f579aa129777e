"""Dataset readers on miniature copies of the OTB, LaSOT and GOT-10k layouts written by the tests."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from siamstream.data.annotations import AnnotationError, DatasetError
from siamstream.data.datasets import detect_layout, open_dataset
from siamstream.data.selection import select_sequences


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
    assert sequences[0].visible is not None
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
    assert val.visible is not None
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


def numbered_images(folder: Path, numbers: range, digits: int = 4) -> None:
    """Frames whose first pixel holds their number (mod 256), so a test can tell which file is which."""
    folder.mkdir(parents=True)
    for number in numbers:
        cv2.imwrite(str(folder / f"{number:0{digits}d}.png"), np.full((4, 4, 3), number % 256, np.uint8))


def box_rows(count: int, first: int = 1) -> str:
    """Box file whose row k (1-based frame number first+k) is `n,1,2,3` with n the frame number."""
    return "".join(f"{number},1,2,3\n" for number in range(first, first + count))


def test_otb_box_files_that_annotate_part_of_the_image_folder(tmp_path):
    # The OTB site: David's 471 boxes are frames 300..770; Football1's 74 boxes are frames 1..74.
    numbered_images(tmp_path / "David" / "img", range(1, 771))
    (tmp_path / "David" / "groundtruth_rect.txt").write_text(box_rows(471, first=300))
    numbered_images(tmp_path / "Football1" / "img", range(1, 75 + 5))
    (tmp_path / "Football1" / "groundtruth_rect.txt").write_text(box_rows(74))
    david, football = open_dataset(tmp_path, "otb")
    assert len(david) == 471 and david.frame_paths[0].name == "0300.png"
    assert david.frame_paths[-1].name == "0770.png" and david.frame(0)[0, 0, 0] == 300 % 256
    assert len(football) == 74 and football.frame_paths[-1].name == "0074.png"


def test_otb_folder_already_cut_to_the_annotated_frames_is_read_as_it_is(tmp_path):
    numbered_images(tmp_path / "David" / "img", range(300, 771))
    (tmp_path / "David" / "groundtruth_rect.txt").write_text(box_rows(471, first=300))
    (david,) = open_dataset(tmp_path, "otb")
    assert len(david) == 471 and david.ground_truth[0, 0] == 300


def test_otb_tiger1_starts_at_frame_6_as_in_pysots_json(tmp_path):
    numbered_images(tmp_path / "Tiger1" / "img", range(1, 355))
    (tmp_path / "Tiger1" / "groundtruth_rect.txt").write_text(box_rows(354))
    (tiger,) = open_dataset(tmp_path, "otb")
    assert len(tiger) == 349  # pysot's OTB100.json: 349 frames
    assert tiger.frame_paths[0].name == "0006.png" and tiger.init_box.tolist() == [6, 1, 2, 3]
    assert tiger.ground_truth[-1].tolist() == [354, 1, 2, 3]


def test_otb_empty_target_file_is_skipped_and_pysot_attributes_are_read(tmp_path):
    numbered_images(tmp_path / "Human4" / "img", range(1, 4))
    (tmp_path / "Human4" / "groundtruth_rect.1.txt").write_text("\n")
    (tmp_path / "Human4" / "groundtruth_rect.2.txt").write_text(box_rows(3))
    otb_sequence(tmp_path, "Basketball", "198,214,34,81\n197,214,34,81\n")
    pysot_json = {
        "Basketball": {"video_dir": "Basketball", "attr": ["IV", "OCC", "DEF"], "gt_rect": []},
        "Human4-2": {"video_dir": "Human4", "attr": ["SV"], "gt_rect": []},
    }
    (tmp_path / "OTB100.json").write_text(json.dumps(pysot_json))
    (tmp_path / "notes.json").write_text("[1, 2]")  # not pysot's shape: ignored
    basketball, human = open_dataset(tmp_path)
    assert (basketball.name, basketball.attributes) == ("Basketball", ("IV", "OCC", "DEF"))
    assert (human.name, human.attributes, len(human)) == ("Human4-2", ("SV",), 3)


def got10k_full_sequence(split_folder: Path, name: str, frames: int, cover: str, absence: str) -> None:
    got10k_sequence(split_folder, name, frames, box_rows(frames), absence=absence)
    (split_folder / name / "cover.label").write_text(cover)
    (split_folder / name / "cut_by_image.label").write_text("0\n" * frames)
    (split_folder / name / "meta_info.ini").write_text(
        "[METAINFO]\nurl: https://example.invalid/v\nobject_class: ichneumon\nmotion_class: walking\n"
        "major_class: viverrine\nroot_class: animal\nmotion_adverb: slowly\nresolution: (1920, 1080)\n"
    )
    listing = split_folder / "list.txt"
    listing.write_text((listing.read_text() if listing.is_file() else "") + name + "\n")


def test_got10k_root_with_split_folders_cover_labels_and_meta(tmp_path):
    # cover 0 marks frame 2 invisible although absence.label says present: the toolkit uses cover.
    got10k_full_sequence(tmp_path / "val", "GOT-10k_Val_000001", 4, "8\n3\n0\n1\n", "0\n0\n0\n0\n")
    got10k_full_sequence(tmp_path / "train", "GOT-10k_Train_000001", 2, "8\n8\n", "0\n0\n")
    got10k_sequence(tmp_path / "test", "GOT-10k_Test_000001", 3, "5,6,7,8\n")
    (tmp_path / "test" / "list.txt").write_text("GOT-10k_Test_000001\n")
    assert detect_layout(tmp_path) == "got10k"
    (val,) = open_dataset(tmp_path)
    assert val.name == "GOT-10k_Val_000001"
    assert val.visible is not None
    assert val.visible.tolist() == [True, True, False, True]
    assert val.image_size == (1920, 1080)
    assert val.attributes == ("object_class=ichneumon", "motion_class=walking")
    (test,) = open_dataset(tmp_path, split="test")
    assert test.name == "GOT-10k_Test_000001" and np.isnan(test.ground_truth[1:]).all()
    assert [s.name for s in open_dataset(tmp_path / "train")] == ["GOT-10k_Train_000001"]


def test_lasot_with_a_train_category_is_not_taken_for_got10k(tmp_path):
    lasot_sequence(tmp_path, "train-1", "10,10,5,5\n11,10,5,5\n", "0,0", "0,0")
    assert detect_layout(tmp_path) == "lasot"


def test_sequences_are_selected_by_name_or_glob_in_dataset_order(tmp_path):
    for name in ("Basketball", "Car4", "CarDark", "Deer"):
        otb_sequence(tmp_path, name, "1,2,3,4\n")
    sequences = open_dataset(tmp_path)
    chosen = select_sequences(sequences, ["Deer", "Car*"])
    assert [s.name for s in chosen] == ["Car4", "CarDark", "Deer"]
    with pytest.raises(DatasetError, match="no sequence matches 'Dear'"):
        select_sequences(sequences, ["Deer", "Dear"])
