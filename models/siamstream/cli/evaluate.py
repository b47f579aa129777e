"""`siamstream eval`: one-pass evaluation of tracker packages on a dataset or a synthetic suite.

With `--template-update RATE[:GATE]` every package runs the confidence-gated online template update with
that rate (and gate; the package's own gate when left out) instead of its config's: the packages must be
update-capable (exported with the update enabled, so that they have `update.pt`). Besides the scores it
prints, per tracker, the median tracking step in ms (crop, search, post-processing and update; frame
decoding or rendering excluded) and how many steps updated the template.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from siamstream.cli.library import existing_path
from siamstream.config import TemplateUpdateConfig, TrackerConfig

if TYPE_CHECKING:
    import numpy as np

    from siamstream.data import TrackingSequence
    from siamstream.package import TrackerPackage
    from siamstream.tracking.offline import OfflineTracker

# The values of `siamstream.data.Challenge`, spelled out because that module loads OpenCV, which building
# the parser must not (tests/test_cli_startup.py checks that the two agree).
CHALLENGES = (
    "fast_motion",
    "scale_change",
    "aspect_change",
    "out_of_view",
    "occlusion",
    "distractors",
    "appearance_change",
)


@dataclass(frozen=True)
class UpdateOverride:
    """`--template-update RATE[:GATE]`: the update's rate and gate (None keeps the package's gate)."""

    rate: float
    gate: float | None


def parse_update_override(text: str) -> UpdateOverride:
    """Parse `RATE[:GATE]`, both in [0, 1]."""
    rate_text, _, gate_text = text.partition(":")
    try:
        rate = float(rate_text)
        gate = float(gate_text) if gate_text else None
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"template update must be RATE[:GATE], got {text!r}") from error
    if not 0.0 <= rate <= 1.0 or (gate is not None and not 0.0 <= gate <= 1.0):
        raise argparse.ArgumentTypeError(f"template update rate and gate must be in [0, 1], got {text!r}")
    return UpdateOverride(rate, gate)


def add_parser(root: argparse._SubParsersAction) -> None:
    parser = root.add_parser("eval", help="one-pass evaluation: success AUC, precision, plots")
    parser.add_argument(
        "--package",
        required=True,
        action="append",
        type=existing_path,
        help="tracker package directory (repeat to compare trackers)",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", type=existing_path, help="dataset root (OTB, LaSOT or GOT-10k layout)")
    source.add_argument("--synthetic", type=int, metavar="N", help="generate N synthetic sequences instead")
    parser.add_argument(
        "--layout", choices=["otb", "lasot", "got10k"], help="dataset layout (default: detect)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic suite")
    parser.add_argument(
        "--length", type=int, default=60, help="frames per synthetic sequence (640x480; default 60)"
    )
    parser.add_argument(
        "--challenge",
        action="append",
        default=[],
        choices=CHALLENGES,
        help="add this challenge to every synthetic sequence (repeatable; e.g. appearance_change)",
    )
    parser.add_argument(
        "--template-update",
        type=parse_update_override,
        metavar="RATE[:GATE]",
        help="run the online template update at this rate (and gate) instead of the packages' config; "
        "the packages must have update.pt",
    )
    parser.add_argument("--out", required=True, type=Path, help="folder for results, reports and plots")
    parser.add_argument("--device", default="cpu", help="torch device of the models")
    parser.set_defaults(run=run_eval)


def tracker_config(package: TrackerPackage, override: UpdateOverride | None) -> TrackerConfig:
    """The package's config, with the template update replaced by `override` when given.

    Raises ValueError when an override is asked of a package without the update stage."""
    config = package.config
    if override is None:
        return config
    if not package.meta.template_update:
        raise ValueError(
            f"{package.root}: no update.pt, so --template-update cannot apply; export the checkpoint "
            "again with the template update enabled"
        )
    return with_template_update(config, override)


def with_template_update(config: TrackerConfig, override: UpdateOverride) -> TrackerConfig:
    """`config` with the template update enabled at the override's rate and gate (its own gate when the
    override has none), validated again (trackers whose templates are vectors refuse the update)."""
    gate = config.template_update.gate if override.gate is None else override.gate
    settings = TemplateUpdateConfig(enabled=True, rate=override.rate, gate=gate)
    return TrackerConfig.model_validate({**config.model_dump(), "template_update": settings.model_dump()})


def report_names(packages: list[TrackerPackage]) -> list[str]:
    """One report name per package: the tracker's, followed by `@<package folder>` when several
    packages hold the same tracker (e.g. the same weights exported with and without the update)."""
    trackers = [package.meta.tracker for package in packages]
    names = [
        f"{tracker}@{package.root.name}" if trackers.count(tracker) > 1 else tracker
        for tracker, package in zip(trackers, packages, strict=True)
    ]
    if len(set(names)) != len(names):
        raise ValueError(f"two packages would write the same report: {', '.join(names)}")
    return names


@dataclass
class StepLog:
    """Tracking-step times (ms) and template updates over the sequences tracked so far."""

    step_ms: list[float] = field(default_factory=list)
    updates: int = 0

    def summary(self, name: str) -> str:
        median = statistics.median(self.step_ms) if self.step_ms else float("nan")
        return (
            f"{name}: median step {median:.2f} ms over {len(self.step_ms)} steps; "
            f"template updated in {self.updates} of them"
        )


def track_boxes(
    tracker: OfflineTracker, sequence: TrackingSequence, log: StepLog | None = None
) -> np.ndarray:
    """Predicted `xywh` boxes for every frame; row 0 is the initial box. Steps after the first frame
    are timed into `log`, with the number of template updates they made."""
    import numpy as np  # deferred with the rest of the evaluation (see run_eval)

    frames = iter(sequence.frames())
    boxes = [tracker.init(next(frames), tuple(float(v) for v in sequence.init_box)).bbox]
    for frame in frames:
        start = time.perf_counter()
        boxes.append(tracker.track(frame).bbox)
        if log is not None:
            log.step_ms.append((time.perf_counter() - start) * 1e3)
    if log is not None and tracker.state is not None:
        log.updates += tracker.state.template_updates
    return np.array(boxes, dtype=np.float64)


def run_eval(args: argparse.Namespace) -> int:
    # Deferred: torch, OpenCV and matplotlib load when an evaluation runs, not whenever the parser is built.
    from siamstream.data import Challenge, open_dataset, synthetic_suite, write_boxes
    from siamstream.evaluation import evaluate, plot_norm_precision, plot_precision, plot_success
    from siamstream.package import read_package
    from siamstream.runner import TorchScriptRunner
    from siamstream.tracking.offline import OfflineTracker

    if args.dataset is not None:
        if args.challenge:
            raise ValueError("--challenge applies to --synthetic suites only")
        sequences: list[TrackingSequence] = list(open_dataset(args.dataset, args.layout))
    else:
        extra = frozenset(Challenge(name) for name in args.challenge)
        sequences = list(
            synthetic_suite(args.synthetic, args.seed, length=args.length, extra_challenges=extra)
        )
    packages = [read_package(package_dir) for package_dir in args.package]
    configs = [tracker_config(package, args.template_update) for package in packages]
    reports, summaries = [], []
    for package, config, name in zip(packages, configs, report_names(packages), strict=True):
        tracker = OfflineTracker(config, TorchScriptRunner(package, args.device))
        results_dir = args.out / "results" / name
        results_dir.mkdir(parents=True, exist_ok=True)
        log = StepLog()

        def track_fn(
            sequence: TrackingSequence,
            tracker: OfflineTracker = tracker,
            folder: Path = results_dir,
            log: StepLog = log,
        ):
            boxes = track_boxes(tracker, sequence, log)
            write_boxes(folder / f"{sequence.name}.txt", boxes)
            return boxes

        report = evaluate(sequences, track_fn, name)
        (args.out / f"{name}.json").write_text(report.to_json() + "\n")
        print(report.to_text())
        reports.append(report)
        summaries.append(log.summary(name))
    print("\n".join(summaries))
    plot_success(reports, args.out / "success.png")
    plot_precision(reports, args.out / "precision.png")
    plot_norm_precision(reports, args.out / "norm_precision.png")
    print(f"reports and plots in {args.out}")
    return 0
