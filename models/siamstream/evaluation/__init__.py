"""Evaluating trackers: one-pass (pysot's and GOT-10k's figures), the reset protocol, reports.

The plots are `siamstream.evaluation.plots`, imported where they are drawn: they need matplotlib (the
`train` extra), which computing the figures does not.
"""

from siamstream.evaluation.got10k import Got10kScores, got10k_ious, write_got10k_run, zip_submission
from siamstream.evaluation.metrics import (
    SequenceMetrics,
    centre_error,
    evaluate_sequence,
    normalised_centre_error,
    overlap,
    valid_frames,
)
from siamstream.evaluation.one_pass import track_boxes
from siamstream.evaluation.report import EvaluationReport, SequenceResult
from siamstream.evaluation.reset_report import ResetReport, reset_report, track_with_resets
from siamstream.evaluation.results import read_result
from siamstream.evaluation.runner import evaluate, evaluate_results, is_scored, score_sequence

__all__ = [
    "EvaluationReport",
    "Got10kScores",
    "ResetReport",
    "SequenceMetrics",
    "SequenceResult",
    "centre_error",
    "evaluate",
    "evaluate_results",
    "evaluate_sequence",
    "got10k_ious",
    "is_scored",
    "normalised_centre_error",
    "overlap",
    "read_result",
    "reset_report",
    "score_sequence",
    "track_boxes",
    "track_with_resets",
    "valid_frames",
    "write_got10k_run",
    "zip_submission",
]
