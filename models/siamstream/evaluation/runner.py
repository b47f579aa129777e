"""Run one-pass evaluation: track every sequence (or read saved results) and score it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from siamstream.data.sequence import TrackingSequence
from siamstream.evaluation.got10k import Got10kScores, frame_speeds, got10k_ious, scored_after_first
from siamstream.evaluation.metrics import evaluate_sequence
from siamstream.evaluation.report import EvaluationReport, SequenceResult
from siamstream.evaluation.results import read_result

TrackFn = Callable[[TrackingSequence], np.ndarray]


def is_scored(sequence: TrackingSequence) -> bool:
    """Whether the sequence has ground truth to score after its initial frame (not so for GOT-10k's test
    split, whose annotation is the first box only)."""
    return bool(scored_after_first(sequence.ground_truth, sequence.visible).any())


def score_sequence(
    sequence: TrackingSequence, runs: Sequence[np.ndarray], fps: float | None = None, timed_frames: int = 0
) -> SequenceResult:
    """Score the runs of one tracker on `sequence` (each `(N, 4)` xywh image pixels, row 0 the initial
    box): OPE on the first run, GOT-10k's figures on the IoUs of all runs pooled. `fps` is frames over
    the run's time, or with `timed_frames` the mean speed of that many timed frames (the GOT-10k
    toolkit's)."""
    expected = (len(sequence), 4)
    runs = [np.asarray(run, dtype=np.float64) for run in runs]
    for run in runs:
        if run.shape != expected:
            raise ValueError(
                f"sequence {sequence.name!r}: expected predicted boxes of shape {expected}, got {run.shape}"
            )
    metrics = evaluate_sequence(sequence.ground_truth, runs[0], sequence.visible)
    ious = [got10k_ious(sequence.ground_truth, run, sequence.visible, sequence.image_size) for run in runs]
    got10k = Got10kScores.from_ious(np.concatenate(ious))
    return SequenceResult.from_metrics(
        sequence.name, len(sequence), metrics, got10k, fps, timed_frames, sequence.attributes
    )


def evaluate(
    sequences: Iterable[TrackingSequence],
    track_fn: TrackFn,
    tracker_name: str,
    progress: bool = True,
    clock: Callable[[], float] = time.perf_counter,
) -> EvaluationReport:
    """Track each sequence with `track_fn` and score it by OPE (and GOT-10k's figures).

    `track_fn(sequence)` returns the predicted boxes, float `(N, 4)` xywh in image pixels, one per frame;
    row 0 is the initialisation box (`sequence.init_box`). Speed is the sequence's frame count over the
    time `track_fn` took (reading frames included), measured with `clock` (seconds). Sequences without
    ground truth after frame 0 are tracked (so that their results are written) and listed as unscored.
    `progress` shows a tqdm bar over sequences.
    """
    rows, unscored = [], []
    with tqdm(sequences, desc=tracker_name, unit="seq", disable=not progress) as bar:
        for sequence in bar:
            bar.set_postfix_str(sequence.name)
            start = clock()
            predicted = track_fn(sequence)
            seconds = clock() - start
            if not is_scored(sequence):
                unscored.append(sequence.name)
                continue
            fps = len(sequence) / seconds if seconds > 0 else None
            rows.append(score_sequence(sequence, [predicted], fps))
    return EvaluationReport(tracker=tracker_name, sequences=rows, unscored=unscored)


def evaluate_results(
    sequences: Iterable[TrackingSequence], results_dir: str | Path, tracker_name: str | None = None
) -> EvaluationReport:
    """Score a tracker's saved results, in pysot's or the GOT-10k toolkit's layout (`evaluation.results`).

    `tracker_name` defaults to the folder's name (both toolkits keep `results/DATASET/TRACKER/`). Speed
    is the GOT-10k toolkit's, from `NAME_time.txt` when saved. Sequences without ground truth after frame
    0 are listed as unscored, without looking for their results. Raises `DatasetError` naming the missing
    file, or `AnnotationError` naming a malformed line.
    """
    folder = Path(results_dir)
    rows, unscored = [], []
    for sequence in sequences:
        if not is_scored(sequence):
            unscored.append(sequence.name)
            continue
        saved = read_result(folder, sequence.name)
        speeds = np.empty(0) if saved.frame_seconds is None else frame_speeds(saved.frame_seconds)
        fps = float(speeds.mean()) if speeds.size else None
        rows.append(score_sequence(sequence, saved.runs, fps, speeds.size))
    return EvaluationReport(tracker=tracker_name or folder.name, sequences=rows, unscored=unscored)
