"""Run one-pass evaluation: track every sequence (or read saved results) and score it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from siamstream.data.annotations import DatasetError, read_boxes
from siamstream.data.sequence import TrackingSequence
from siamstream.evaluation.metrics import evaluate_sequence
from siamstream.evaluation.report import EvaluationReport, SequenceResult

TrackFn = Callable[[TrackingSequence], np.ndarray]


def _score(sequence: TrackingSequence, predicted: np.ndarray, fps: float | None) -> SequenceResult:
    predicted = np.asarray(predicted, dtype=np.float64)
    if predicted.shape != (len(sequence), 4):
        raise ValueError(
            f"sequence {sequence.name!r}: expected predicted boxes of shape ({len(sequence)}, 4), "
            f"got {predicted.shape}"
        )
    metrics = evaluate_sequence(sequence.ground_truth, predicted, sequence.visible)
    return SequenceResult.from_metrics(sequence.name, len(sequence), metrics, fps)


def evaluate(
    sequences: Iterable[TrackingSequence],
    track_fn: TrackFn,
    tracker_name: str,
    progress: bool = True,
    clock: Callable[[], float] = time.perf_counter,
) -> EvaluationReport:
    """Track each sequence with `track_fn` and score it by OPE.

    `track_fn(sequence)` returns the predicted boxes, float `(N, 4)` xywh in image pixels, one per frame;
    row 0 is the initialisation box (`sequence.init_box`). Speed is the sequence's frame count over the
    time `track_fn` took (reading frames included), measured with `clock` (seconds). `progress` shows a
    tqdm bar over sequences.
    """
    rows = []
    with tqdm(sequences, desc=tracker_name, unit="seq", disable=not progress) as bar:
        for sequence in bar:
            bar.set_postfix_str(sequence.name)
            start = clock()
            predicted = track_fn(sequence)
            seconds = clock() - start
            fps = len(sequence) / seconds if seconds > 0 else None
            rows.append(_score(sequence, predicted, fps))
    return EvaluationReport(tracker=tracker_name, sequences=rows)


def evaluate_results(
    sequences: Iterable[TrackingSequence], results_dir: str | Path, tracker_name: str | None = None
) -> EvaluationReport:
    """Score saved results in pysot's layout: `results_dir/NAME.txt`, one `x,y,w,h` per frame.

    `tracker_name` defaults to the folder's name (pysot keeps `results/DATASET/TRACKER/`). Raises
    `DatasetError` naming the missing file, or `AnnotationError` naming a malformed line.
    """
    folder = Path(results_dir)
    rows = []
    for sequence in sequences:
        path = folder / f"{sequence.name}.txt"
        if not path.is_file():
            raise DatasetError(f"{path}: no result file for sequence {sequence.name!r}")
        rows.append(_score(sequence, read_boxes(path), fps=None))
    return EvaluationReport(tracker=tracker_name or folder.name, sequences=rows)
