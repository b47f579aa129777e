"""Long-term mode on and off, side by side, on synthetic sequences where the target leaves and returns.

    .venv/bin/python bench/long_term.py [--package models/packages/demo] [--seeds 0-5] [--frames 40]

Each seed gives one `leave_and_return` sequence (640x480, target about 48 px): the target is out of view
from 30% to 50% of the sequence, marked absent, and comes back at least half the frame's height from where
it left. Both arms are the package's config with the same status thresholds and differ only in
`long_term.enabled`; each is an `OfflineTracker` on its own `PackageRunner`, stepping frame by frame
in turn so that both see the same machine load.

The status thresholds are set for the demo package's scores (sigmoid of SiamFC's response): about 0.999
on its target and 0.6-0.7 on background, so the registry's defaults (TRACKING from 0.6) never call a
track LOST. They change no box of the off arm (without long-term mode the status is only reported).

Per seed and arm it prints: frames from the return to the first frame with IoU >= 0.5 (`-` when never
re-acquired), the success AUC over the present frames and over the frames from the return on, the LOST
frames, and the median step time of the frames searched while LOST (normal frames for the off arm). Then
per arm: the re-detection rate, the median frames-to-reacquire, the mean and standard deviation of the
AUCs over seeds, and the paired AUC differences (on - off).
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from siamstream.config import LongTermConfig, StatusConfig, TrackerConfig
from siamstream.data.synthetic import SequenceSpec, SyntheticSequence, leave_and_return
from siamstream.evaluation.metrics import evaluate_sequence, overlap
from siamstream.package import read_package
from siamstream.runner import PackageRunner
from siamstream.tracking.offline import OfflineTracker
from siamstream.tracking.state import TrackResult, TrackStatus

# The demo package's score on background is 0.6-0.7 and on its target about 0.999.
STATUS = StatusConfig(tracking_above=0.95, lost_below=0.9, lost_after=3)
REACQUIRED_IOU = 0.5
TARGET_SCALE = 0.1  # x 480: a 48 px target, whose lost search needs a grid of two 831 crops on 640x480
ARMS = ("off", "on")


@dataclass
class ArmRun:
    results: list[TrackResult] = field(default_factory=list)
    lost_step_ms: list[float] = field(default_factory=list)
    step_ms: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class ArmScore:
    frames_to_reacquire: int | None
    auc_present: float
    auc_after_return: float
    lost_frames: int
    lost_step_ms: float | None
    step_ms: float


def arm_configs(base: TrackerConfig) -> dict[str, TrackerConfig]:
    common = base.model_copy(update={"status": STATUS})
    return {
        "off": common,
        "on": common.model_copy(update={"long_term": LongTermConfig(enabled=True)}),
    }


def run_seed(package_root: str, sequence: SyntheticSequence) -> dict[str, ArmRun]:
    package = read_package(package_root)
    trackers = {
        arm: OfflineTracker(config, PackageRunner(package))
        for arm, config in arm_configs(package.config).items()
    }
    runs = {arm: ArmRun() for arm in ARMS}
    init_box = sequence.init_box.tolist()
    for index, frame in enumerate(sequence.frames()):
        for arm in ARMS if index % 2 else reversed(ARMS):
            tracker, run = trackers[arm], runs[arm]
            if index == 0:
                run.results.append(tracker.init(frame, init_box))
                continue
            was_lost = tracker.state is not None and tracker.state.status is TrackStatus.LOST
            started = time.perf_counter()
            run.results.append(tracker.track(frame))
            elapsed = (time.perf_counter() - started) * 1000
            (run.lost_step_ms if was_lost else run.step_ms).append(elapsed)
    return runs


def score(sequence: SyntheticSequence, run: ArmRun) -> ArmScore:
    visible = sequence.visible
    assert visible is not None
    back = int(np.flatnonzero(~visible)[-1]) + 1
    boxes = np.array([result.bbox for result in run.results])
    ious = overlap(boxes, sequence.ground_truth)
    hits = np.flatnonzero(ious[back:] >= REACQUIRED_IOU)
    after = np.arange(len(sequence)) >= back
    return ArmScore(
        frames_to_reacquire=int(hits[0]) if len(hits) else None,
        auc_present=evaluate_sequence(sequence.ground_truth, boxes, visible).success_auc,
        auc_after_return=evaluate_sequence(sequence.ground_truth, boxes, after).success_auc,
        lost_frames=sum(result.status is TrackStatus.LOST for result in run.results),
        lost_step_ms=statistics.median(run.lost_step_ms) if run.lost_step_ms else None,
        step_ms=statistics.median(run.step_ms),
    )


def parse_seeds(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def mean_sd(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} +- {spread:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--package", default="models/packages/demo")
    parser.add_argument("--seeds", default="0-5", help="seed range, e.g. 0-5")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    scores: dict[str, list[ArmScore]] = {arm: [] for arm in ARMS}
    print(f"package {args.package}, {args.frames} frames 640x480, status {STATUS.model_dump()}")
    print(
        f"{'seed':>4} {'arm':>3} {'reacq':>5} {'AUC present':>11} {'AUC after':>9} {'LOST':>4} "
        f"{'lost ms':>7} {'step ms':>7}"
    )
    for seed in parse_seeds(args.seeds):
        spec = SequenceSpec(
            name=f"return-{seed}",
            seed=seed,
            length=args.frames,
            width=640,
            height=480,
            target_scale=TARGET_SCALE,
        )
        sequence = leave_and_return(spec)
        runs = run_seed(args.package, sequence)
        for arm in ARMS:
            result = score(sequence, runs[arm])
            scores[arm].append(result)
            reacquired = "-" if result.frames_to_reacquire is None else str(result.frames_to_reacquire)
            lost_ms = "-" if result.lost_step_ms is None else f"{result.lost_step_ms:.0f}"
            print(
                f"{seed:>4} {arm:>3} {reacquired:>5} {result.auc_present:>11.3f} "
                f"{result.auc_after_return:>9.3f} {result.lost_frames:>4} {lost_ms:>7} "
                f"{result.step_ms:>7.0f}",
                flush=True,
            )
    print()
    seeds = len(scores["off"])
    for arm in ARMS:
        arm_scores = scores[arm]
        found = [s.frames_to_reacquire for s in arm_scores if s.frames_to_reacquire is not None]
        median_frames = f"{statistics.median(found):.1f}" if found else "-"
        print(
            f"{arm:>3}: re-detected {len(found)}/{seeds}, median frames to reacquire {median_frames}, "
            f"AUC present {mean_sd([s.auc_present for s in arm_scores])}, "
            f"AUC after return {mean_sd([s.auc_after_return for s in arm_scores])}"
        )
    for name in ("auc_present", "auc_after_return"):
        differences = [
            getattr(on, name) - getattr(off, name)
            for on, off in zip(scores["on"], scores["off"], strict=True)
        ]
        print(f"paired {name} on - off: {mean_sd(differences)}")
    lost = [s.lost_step_ms for s in scores["on"] if s.lost_step_ms is not None]
    normal = [s.step_ms for s in scores["on"]]
    if lost:
        print(
            f"step time of the on arm: LOST frames {statistics.median(lost):.0f} ms, "
            f"other frames {statistics.median(normal):.0f} ms (medians over seeds)"
        )


if __name__ == "__main__":
    main()
