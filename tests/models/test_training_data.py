"""Training data: VID and COCO readers on miniature copies, benchmark and synthetic sources, pair
sampling, crops with their boxes, and the seeded loader."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from siamstream.data import DatasetError, SequenceSpec, generate_sequence, write_got10k
from siamstream.registry import get_config
from siamstream.training import build_objective, default_training_config, open_training_data
from siamstream.training.augment import box_in_crop, crop_region, sample_crop
from siamstream.training.config import Augmentation
from siamstream.training.pairs import PairDataset, pair_loader

VID_XML = """<annotation><folder>{snippet}</folder><filename>{frame}</filename>
<size><width>96</width><height>64</height></size>{objects}</annotation>"""
VID_OBJECT = """<object><trackid>{track}</trackid><name>n01</name>
<bndbox><xmax>{x1}</xmax><xmin>{x0}</xmin><ymax>{y1}</ymax><ymin>{y0}</ymin></bndbox></object>"""


def write_vid(root: Path, snippet: str, frames: int) -> None:
    annotations = root / "Annotations/VID/train" / snippet
    images = root / "Data/VID/train" / snippet
    annotations.mkdir(parents=True)
    images.mkdir(parents=True)
    for index in range(frames):
        objects = VID_OBJECT.format(track=0, x0=10 + index, y0=5, x1=40 + index, y1=25)
        if index >= 1:  # a second object appears from frame 1
            objects += VID_OBJECT.format(track=1, x0=50, y0=30, x1=70, y1=60)
        name = f"{index:06d}"
        (annotations / f"{name}.xml").write_text(VID_XML.format(snippet=snippet, frame=name, objects=objects))
        cv2.imwrite(str(images / f"{name}.JPEG"), np.full((64, 96, 3), 40 * index, np.uint8))


def test_vid_reader_gives_one_sequence_per_track(tmp_path: Path) -> None:
    write_vid(tmp_path, "ILSVRC2015_VID_train_0000/snippet_a", 3)
    sequences = open_training_data(str(tmp_path))
    assert [s.name for s in sequences] == [
        "ILSVRC2015_VID_train_0000/snippet_a-0",
        "ILSVRC2015_VID_train_0000/snippet_a-1",
    ]
    first, second = sequences
    assert len(first) == 3 and len(second) == 2
    np.testing.assert_array_equal(first.box(2), [12, 5, 30, 20])
    np.testing.assert_array_equal(second.box(0), [50, 30, 20, 30])
    assert first.frame(2)[0, 0, 0] == 80 and second.frame(0)[0, 0, 0] == 40  # track 1 starts at frame 1


def test_vid_reader_names_the_malformed_file(tmp_path: Path) -> None:
    write_vid(tmp_path, "snippet_b", 2)
    broken = tmp_path / "Annotations/VID/train/snippet_b/000001.xml"
    broken.write_text("<annotation><object><trackid>0</trackid>")
    with pytest.raises(DatasetError, match=r"000001\.xml"):
        open_training_data(str(tmp_path), "vid")
    broken.write_text(VID_XML.format(snippet="b", frame="1", objects="<object><trackid>0</trackid></object>"))
    with pytest.raises(DatasetError, match="bndbox/xmin"):
        open_training_data(str(tmp_path), "vid")


def write_coco(root: Path, annotations: list[dict]) -> Path:
    (root / "images/train2017").mkdir(parents=True)
    (root / "annotations").mkdir()
    cv2.imwrite(str(root / "images/train2017/a.jpg"), np.full((50, 80, 3), 200, np.uint8))
    document = {"images": [{"id": 7, "file_name": "a.jpg"}], "annotations": annotations}
    path = root / "annotations/instances_train2017.json"
    path.write_text(json.dumps(document))
    return path


def test_coco_reader_keeps_usable_non_crowd_annotations(tmp_path: Path) -> None:
    write_coco(
        tmp_path,
        [
            {"id": 1, "image_id": 7, "bbox": [5, 6, 20, 10], "iscrowd": 0},
            {"id": 2, "image_id": 7, "bbox": [0, 0, 30, 30], "iscrowd": 1},
            {"id": 3, "image_id": 7, "bbox": [1, 1, 0, 4], "iscrowd": 0},
        ],
    )
    sequences = open_training_data(str(tmp_path))
    assert [s.name for s in sequences] == ["train2017-1"]
    assert len(sequences[0]) == 1 and sequences[0].frame(0).shape == (50, 80, 3)
    np.testing.assert_array_equal(sequences[0].box(0), [5, 6, 20, 10])


def test_coco_reader_rejects_a_malformed_file(tmp_path: Path) -> None:
    path = write_coco(tmp_path, [{"id": 1, "image_id": 99, "bbox": [5, 6, 20, 10]}])
    with pytest.raises(DatasetError, match=r"instances_train2017\.json"):
        open_training_data(str(tmp_path), "coco")
    path.write_text("{not json")
    with pytest.raises(DatasetError, match="not a COCO instances file"):
        open_training_data(str(tmp_path), "coco")


def test_got10k_and_synthetic_sources(tmp_path: Path) -> None:
    sequence = generate_sequence(SequenceSpec(name="walk", length=5, width=96, height=72, seed=1))
    write_got10k(sequence, tmp_path)
    (read,) = open_training_data(str(tmp_path))
    np.testing.assert_allclose(read.box(3), sequence.ground_truth[3], atol=1e-6)
    synthetic = open_training_data("synthetic:2")
    assert len(synthetic) == 2 and synthetic[0].frame(0).shape == (240, 320, 3)


def test_a_got10k_root_trains_on_its_train_split(tmp_path: Path) -> None:
    splits = {"train": "GOT-10k_Train_000001", "val": "GOT-10k_Val_000001", "test": "GOT-10k_Test_000001"}
    for seed, (split, name) in enumerate(splits.items()):
        spec = SequenceSpec(name=name, length=3, width=64, height=64, seed=seed)
        write_got10k(generate_sequence(spec), tmp_path / split)
    assert [sequence.name for sequence in open_training_data(str(tmp_path))] == ["GOT-10k_Train_000001"]
    # A split's own folder is read as it is.
    assert [sequence.name for sequence in open_training_data(str(tmp_path / "val"))] == ["GOT-10k_Val_000001"]


def test_crop_places_the_box_where_the_pixels_are() -> None:
    frame = np.zeros((200, 300, 3), np.uint8)
    frame[80:120, 100:160] = 255  # box xywh (100, 80, 60, 40)
    box = np.array([100.0, 80.0, 60.0, 40.0])
    center, side = (130.0, 100.0), 120.0
    crop = crop_region(frame, center, side, 60, np.zeros(3))
    np.testing.assert_allclose(box_in_crop(box, center, side, 60), [-15, -10, 15, 10])
    # the white box covers crop pixels 15..44 x 20..39 (crop centre 30, scale 0.5)
    assert crop[30, 30, 0] == 255 and crop[21:39, 16:44].min() == 255
    assert crop[18, 30, 0] == 0 and crop[30, 13, 0] == 0


def test_sample_crop_flips_and_scales_the_box_consistently() -> None:
    frame = np.zeros((200, 300, 3), np.uint8)
    frame[80:120, 100:160] = 255
    box = np.array([100.0, 80.0, 60.0, 40.0])
    still = Augmentation(shift=0, scale=0, color=0, flip=1.0)
    crop = sample_crop(frame, box, 127, 127, 0.5, still, np.random.default_rng(0))
    scale = 127 / np.sqrt(110 * 90)  # context: (60 + 50) x (40 + 50)
    np.testing.assert_allclose(crop.box, [-30 * scale, -20 * scale, 30 * scale, 20 * scale], rtol=1e-9)
    moved = sample_crop(
        frame, box, 255, 127, 0.5, Augmentation(shift=64, scale=0.18), np.random.default_rng(3)
    )
    width = moved.box[2] - moved.box[0]
    assert 60 * scale / 1.18 <= width <= 60 * scale / 0.82  # same scale: 255/(s_z*255/127)
    cx = (moved.box[0] + moved.box[2]) / 2
    assert abs(cx) <= 64 * (1 + 1e-9) and moved.image.shape == (255, 255, 3)


def test_pair_dataset_items_and_labels_match_the_tracker() -> None:
    tracker = get_config("siamrpn_alex")
    training = default_training_config(tracker).model_copy(update={"pairs_per_epoch": 6})
    sequences = open_training_data("synthetic:2")
    dataset = PairDataset(sequences, tracker, training, build_objective(tracker, training))
    item = dataset[0]
    assert item["template"].shape == (3, 127, 127) and item["search"].shape == (3, 255, 255)
    assert item["template"].dtype == torch.uint8 and dataset.score_size == 17
    assert item["cls"].shape == (5, 17, 17) and item["delta"].shape == (4, 5, 17, 17)
    again = dataset[0]
    assert all(torch.equal(item[name], again[name]) for name in item)
    dataset.set_epoch(1)
    assert not torch.equal(dataset[0]["search"], item["search"])
    positives = [bool(dataset[i]["positive"]) for i in range(6)]
    assert all(bool((dataset[i]["cls"] == 1).any()) == positives[i] for i in range(6) if positives[i])


def test_loader_batches_do_not_depend_on_the_worker_count() -> None:
    tracker = get_config("siamfc_alexnet")
    training = default_training_config(tracker).model_copy(update={"pairs_per_epoch": 4, "search_size": 159})
    sequences = open_training_data("synthetic:2")
    dataset = PairDataset(sequences, tracker, training, build_objective(tracker, training))
    inline = next(iter(pair_loader(dataset, 2, 0, 0)))
    workers = next(iter(pair_loader(dataset, 2, 1, 0)))
    assert inline["search"].shape == (2, 3, 159, 159) and inline["target"].shape == (2, 5, 5)
    assert all(torch.equal(inline[name], workers[name]) for name in inline)
