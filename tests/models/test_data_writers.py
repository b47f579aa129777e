"""Writers produce what the readers read back: same boxes, same absence flags, same pictures."""

import numpy as np

from siamstream.data.datasets import open_dataset
from siamstream.data.sequence import Sequence
from siamstream.data.synthetic import Challenge, SequenceSpec, generate_sequence
from siamstream.data.writers import write_got10k, write_otb


def small_sequence(name: str, seed: int):
    spec = SequenceSpec(
        name=name, width=160, height=120, length=5, seed=seed, challenges={Challenge.SCALE_CHANGE}
    )
    return generate_sequence(spec)


def test_otb_round_trip(tmp_path):
    sequence = small_sequence("Dancer", 1)
    folder = write_otb(sequence, tmp_path)
    assert (folder / "img" / "0005.jpg").is_file()
    (read,) = open_dataset(tmp_path)
    assert read.name == "Dancer"
    assert np.array_equal(read.ground_truth, sequence.ground_truth)
    frames = list(read.frames())
    assert len(frames) == 5
    assert np.corrcoef(frames[4].ravel(), sequence.frame(4).ravel())[0, 1] > 0.97  # JPEG is lossy


def test_got10k_round_trip_with_list_and_absence(tmp_path):
    first = small_sequence("GOT-10k_Val_000009", 2)
    write_got10k(first, tmp_path)
    rendered = tmp_path / "GOT-10k_Val_000009"
    visible = np.array([True, True, False, True, True])
    ground_truth = first.ground_truth.copy()
    ground_truth[2] = np.nan
    second = Sequence("GOT-10k_Val_000001", tuple(sorted(rendered.glob("*.jpg"))), ground_truth, visible)
    write_got10k(second, tmp_path)
    write_got10k(first, tmp_path)  # rewriting does not duplicate the list entry
    assert (tmp_path / "list.txt").read_text() == "GOT-10k_Val_000001\nGOT-10k_Val_000009\n"
    read_second, read_first = open_dataset(tmp_path)
    assert np.array_equal(read_first.ground_truth, first.ground_truth)
    assert read_first.visible is None
    assert np.array_equal(read_second.ground_truth, ground_truth, equal_nan=True)
    assert read_second.visible is not None
    assert read_second.visible.tolist() == visible.tolist()
