"""Train and evaluate every (arm, seed) of a study plan, resumably.

Each (arm, seed) lives in `out/arms/<arm>/seed<k>/`:
- `train/`: the training run (a checkpoint per epoch; an interrupted run resumes from its last one);
- `package/`: the last checkpoint exported as a tracker package (TorchScript, as served);
- `evaluation.json`: per held-out sequence, the one-pass scores and the reset-protocol run (written last,
  atomically: its presence means the task is done).

A task whose `evaluation.json` exists is skipped, so a study interrupted anywhere resumes with
`run_study` on the same folder; removing a file redoes the part it records.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from siamstream.data.synthetic import STUDY_STRATA, SyntheticSequence, stratified_suite
from siamstream.evaluation.metrics import evaluate_sequence
from siamstream.evaluation.one_pass import track_boxes
from siamstream.evaluation.reset import run_with_resets
from siamstream.study.plan import StudyPlan

EVALUATION_FILE = "evaluation.json"


@dataclass(frozen=True)
class Task:
    arm: str
    seed: int

    def folder(self, out: Path) -> Path:
        return out / "arms" / self.arm / f"seed{self.seed}"

    def done(self, out: Path) -> bool:
        return (self.folder(out) / EVALUATION_FILE).is_file()


def study_tasks(plan: StudyPlan, arms: Iterable[str] | None = None) -> list[Task]:
    """Every (arm, seed), seed-major: all arms of the first seed before any of the second, so that an
    interrupted study has whole seeds to compare."""
    names = [arm.name for arm in plan.arms] if arms is None else list(arms)
    for name in names:
        plan.arm(name)  # an unknown arm raises here, before anything runs
    return [Task(name, seed) for seed in plan.seeds for name in names]


def held_out_suite(plan: StudyPlan) -> list[SyntheticSequence]:
    suite = plan.suite
    return stratified_suite(suite.per_stratum, suite.seed, suite.length, suite.width, suite.height)


def stratum_of(sequence_name: str) -> str:
    """The stratum of a `stratified_suite` sequence name (`<stratum>-NN`)."""
    stratum = sequence_name.rsplit("-", 1)[0]
    if stratum not in STUDY_STRATA:
        raise ValueError(f"{sequence_name!r} is not a stratified-suite sequence")
    return stratum


def run_task(plan: StudyPlan, task: Task, out: Path, device: str = "cpu", threads: int = 1) -> dict[str, Any]:
    """Train (or resume), export and evaluate one (arm, seed); returns its summary."""
    import torch

    from siamstream.checkpoint import load_weights, read_checkpoint
    from siamstream.nn.network import build_network
    from siamstream.package import WeightsOrigin, export_package
    from siamstream.runner import PackageRunner
    from siamstream.tracking.offline import OfflineTracker
    from siamstream.training import open_training_data, train
    from siamstream.training.trainer import checkpoint_path

    torch.set_num_threads(threads)
    folder = task.folder(out)
    arm = plan.arm(task.arm)
    config = arm.tracker_config()
    training = plan.training_config(arm, task.seed)
    train_dir = folder / "train"
    last = checkpoint_path(train_dir, training.epochs)
    started = time.perf_counter()
    if not last.is_file():
        done = sorted(train_dir.glob("checkpoint_e*.pth"))
        sequences = open_training_data(f"synthetic:{plan.train_sequences}", None)
        train(config, training, sequences, train_dir, device, done[-1] if done else None, progress=False)
    train_s = time.perf_counter() - started
    checkpoint = read_checkpoint(last)
    network = build_network(config)
    load_weights(network, checkpoint.state_dict, config.name)
    package = export_package(
        network, config, folder / "package", source=WeightsOrigin(path=str(last), sha256=checkpoint.sha256)
    )
    runner = PackageRunner(package, device)
    started = time.perf_counter()
    scores = [evaluate_one(OfflineTracker(config, runner), sequence) for sequence in held_out_suite(plan)]
    summary = {
        "arm": task.arm,
        "seed": task.seed,
        "tracker": config.name,
        "training_seconds_this_run": round(train_s, 1),
        "evaluation_seconds": round(time.perf_counter() - started, 1),
        "sequences": scores,
    }
    _write_atomically(folder / EVALUATION_FILE, json.dumps(summary) + "\n")
    return summary


def evaluate_one(tracker: Any, sequence: SyntheticSequence) -> dict[str, Any]:
    """One-pass scores and the reset-protocol run of `tracker` (an `OfflineTracker`) on `sequence`."""
    frames = [sequence.frame(index) for index in range(len(sequence))]
    boxes = track_boxes(tracker, frames, sequence.init_box)
    ope = evaluate_sequence(sequence.ground_truth, boxes, sequence.visible)

    def step(index: int, start_box: np.ndarray | None) -> tuple[float, ...]:
        if start_box is not None:
            return tracker.init(frames[index], tuple(float(v) for v in start_box)).bbox
        return tracker.track(frames[index]).bbox

    reset = run_with_resets(sequence.ground_truth, step, sequence.visible)
    accuracy_frames = reset.accuracy_frames
    return {
        "name": sequence.name,
        "stratum": stratum_of(sequence.name),
        "auc": ope.success_auc,
        "precision": ope.precision,
        "norm_precision": ope.norm_precision,
        "failures": len(reset.failures),
        "accuracy_sum": float(reset.overlaps[accuracy_frames].sum()),
        "accuracy_frames": int(accuracy_frames.sum()),
        "segments": [segment.round(4).tolist() for segment in reset.segments],
        "segment_failed": list(reset.segment_failed),
    }


def run_study(
    plan: StudyPlan,
    out: Path,
    jobs: int = 1,
    device: str = "cpu",
    arms: Iterable[str] | None = None,
    report: Callable[[str], None] = print,
) -> None:
    """Run every task not yet done, `jobs` at a time (each with one torch thread on CPU)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "plan.json").write_text(plan.model_dump_json(indent=2) + "\n")
    pending = [task for task in study_tasks(plan, arms) if not task.done(out)]
    report(f"{len(pending)} tasks to run, {jobs} at a time")
    threads = 1 if device == "cpu" and jobs > 1 else max(1, (os.cpu_count() or 1) // jobs)
    failed = []
    if jobs == 1:
        for task in pending:
            try:
                _report_done(run_task(plan, task, out, device, threads), report)
            except Exception as error:  # one task's failure must not stop the others; it is reported
                failed.append(_report_failed(task, error, report))
    else:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(run_task, plan, task, out, device, threads): task for task in pending}
            for future in as_completed(futures):
                try:
                    _report_done(future.result(), report)
                except Exception as error:
                    failed.append(_report_failed(futures[future], error, report))
    if failed:
        raise StudyError(
            f"{len(failed)} of {len(pending)} tasks failed: {', '.join(failed)}; run again to retry"
        )


class StudyError(RuntimeError):
    """Some tasks of a study failed (the others ran; what they finished is kept)."""


def _report_failed(task: Task, error: Exception, report: Callable[[str], None]) -> str:
    name = f"{task.arm} seed {task.seed}"
    report(f"{name}: FAILED: {type(error).__name__}: {error}")
    return name


def _report_done(summary: dict[str, Any], report: Callable[[str], None]) -> None:
    aucs = [row["auc"] for row in summary["sequences"]]
    failures = sum(row["failures"] for row in summary["sequences"])
    report(
        f"{summary['arm']} seed {summary['seed']}: AUC {np.mean(aucs):.3f}, {failures} failures "
        f"(trained {summary['training_seconds_this_run']:.0f} s, "
        f"evaluated {summary['evaluation_seconds']:.0f} s)"
    )


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(text)
    partial.replace(path)
