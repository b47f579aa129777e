"""One-pass evaluation (OPE) of trackers: metrics, reports, plots and the runner."""

from siamstream.evaluation.metrics import (
    SequenceMetrics,
    centre_error,
    evaluate_sequence,
    normalised_centre_error,
    overlap,
    valid_frames,
)
from siamstream.evaluation.plots import plot_norm_precision, plot_precision, plot_success
from siamstream.evaluation.report import EvaluationReport, SequenceResult
from siamstream.evaluation.runner import evaluate, evaluate_results

__all__ = [
    "EvaluationReport",
    "SequenceMetrics",
    "SequenceResult",
    "centre_error",
    "evaluate",
    "evaluate_results",
    "evaluate_sequence",
    "normalised_centre_error",
    "overlap",
    "plot_norm_precision",
    "plot_precision",
    "plot_success",
    "valid_frames",
]
