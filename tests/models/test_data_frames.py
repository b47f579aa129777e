"""Frame sources: image folders in name order, mp4 videos, and clear errors for unreadable sources."""

import cv2
import numpy as np
import pytest

from siamstream.data.frames import FrameSourceError, iter_frames, open_source
from siamstream.data.synthetic import SequenceSpec, generate_sequence
from siamstream.data.writers import write_mp4
from siamstream.urls import without_credentials


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


def test_open_source_skips_to_the_start_frame_and_reports_the_declared_rate(tmp_path):
    sequence = generate_sequence(SequenceSpec(width=160, height=120, length=6, seed=2))
    path = write_mp4(sequence, tmp_path / "clip.mp4", fps=25)
    decoded = list(iter_frames(path))
    with open_source(str(path)) as video:
        assert (video.fps, video.live, video.name) == (25.0, False, str(path))
        skipped = list(video.frames(start=4))
    assert len(skipped) == 2
    np.testing.assert_array_equal(skipped[0], decoded[4])
    np.testing.assert_array_equal(skipped[1], decoded[5])

    for number in range(1, 4):
        cv2.imwrite(str(tmp_path / f"{number:04d}.png"), np.full((8, 10, 3), number, np.uint8))
    with open_source(str(tmp_path)) as folder:
        assert (folder.fps, folder.live) == (None, False)
        assert [int(frame[0, 0, 0]) for frame in folder.frames(start=1)] == [2, 3]
        assert list(folder.frames(start=3)) == []


def test_open_source_refuses_what_it_cannot_open(tmp_path):
    with pytest.raises(FrameSourceError, match="nor a camera index or rtsp:// URL"):
        open_source(str(tmp_path / "missing.mp4"))
    (tmp_path / "clip.mp4").write_text("not a video")
    with pytest.raises(FrameSourceError, match=r"clip\.mp4: cannot open video"):
        open_source(str(tmp_path / "clip.mp4"))


def test_stream_names_hide_credentials():
    # User name, password and query (cameras take tokens there) go; what is left is as written.
    assert without_credentials("rtsp://admin:hunter2@10.0.0.5:554/live") == "rtsp://10.0.0.5:554/live"
    assert without_credentials("rtsp://10.0.0.5/live?user=a&password=b") == "rtsp://10.0.0.5/live"
    assert without_credentials("rtsps://cam.example/s/1?token=x#frag") == "rtsps://cam.example/s/1"
    assert without_credentials("rtsp://u@[2001:db8::7]:8554") == "rtsp://[2001:db8::7]:8554"
