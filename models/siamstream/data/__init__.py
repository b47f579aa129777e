"""Tracking data: the sequence record, benchmark readers and writers, frame sources, synthetic sequences."""

from siamstream.data.annotations import AnnotationError, DatasetError, read_boxes, write_boxes
from siamstream.data.datasets import Layout, detect_layout, open_dataset
from siamstream.data.frames import FrameSourceError, iter_frames
from siamstream.data.selection import select_sequences
from siamstream.data.sequence import Sequence, TrackingSequence
from siamstream.data.synthetic import (
    Challenge,
    SequenceSpec,
    SyntheticSequence,
    generate_sequence,
    stratified_suite,
    synthetic_suite,
)
from siamstream.data.writers import write_got10k, write_mp4, write_otb

__all__ = [
    "AnnotationError",
    "Challenge",
    "DatasetError",
    "FrameSourceError",
    "Layout",
    "Sequence",
    "SequenceSpec",
    "SyntheticSequence",
    "TrackingSequence",
    "detect_layout",
    "generate_sequence",
    "iter_frames",
    "open_dataset",
    "read_boxes",
    "select_sequences",
    "stratified_suite",
    "synthetic_suite",
    "write_boxes",
    "write_got10k",
    "write_mp4",
    "write_otb",
]
