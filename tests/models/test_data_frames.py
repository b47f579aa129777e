"""Frame sources: image folders in name order, mp4 videos, and clear errors for unreadable sources."""

import cv2
import numpy as np
import pytest

from siamstream.data.frames import FrameSourceError, iter_frames
from siamstream.data.synthetic import SequenceSpec, generate_sequence
from siamstream.data.writers import write_mp4


def test_folder_frames_come_in_name_order(tmp_path):
    for number in (3, 1, 2):
        cv2.imwrite(str(tmp_path / f"{number:04d}.png"), np.full((8, 10, 3), number, np.uint8))
    (tmp_path / "notes.txt").write_text("not a frame")
    frames = list(iter_frames(tmp_path))
    assert [int(frame[0, 0, 0]) for frame in frames] == [1, 2, 3]
    assert frames[0].shape == (8, 10, 3) and frames[0].dtype == np.uint8


def test_mp4_round_trip(tmp_path):
    sequence = generate_sequence(SequenceSpec(width=160, height=120, length=6, seed=2))
    path = write_mp4(sequence, tmp_path / "clip.mp4", fps=25)
    decoded = list(iter_frames(path))
    assert len(decoded) == 6
    assert decoded[0].shape == (120, 160, 3) and decoded[0].dtype == np.uint8
    error = np.abs(decoded[3].astype(int) - sequence.frame(3).astype(int)).mean()
    assert error < 12  # lossy codec, but the same picture


def test_mp4_writer_reports_an_unwritable_path(tmp_path):
    sequence = generate_sequence(SequenceSpec(width=160, height=120, length=2))
    with pytest.raises(OSError, match="cannot open an mp4v video writer"):
        write_mp4(sequence, tmp_path / "missing" / "clip.mp4")


def test_unreadable_sources_raise_clear_errors(tmp_path):
    with pytest.raises(FrameSourceError, match="no such video file or image folder"):
        iter_frames(tmp_path / "nothing")
    with pytest.raises(FrameSourceError, match="no image files"):
        iter_frames(tmp_path)
    (tmp_path / "0001.jpg").write_text("not a jpeg")
    with pytest.raises(FrameSourceError, match=r"0001\.jpg: cannot read or decode image"):
        list(iter_frames(tmp_path))
    fake_video = tmp_path / "clip.mp4"
    fake_video.write_text("not a video")
    with pytest.raises(FrameSourceError, match=r"clip\.mp4: cannot open video"):
        list(iter_frames(fake_video))
