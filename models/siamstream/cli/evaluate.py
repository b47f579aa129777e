"""`siamstream eval`: evaluation of tracker packages, or of saved results, on a dataset or a synthetic suite.

Trackers: `--package DIR` (repeatable) tracks every sequence; `--results DIR` (repeatable) scores a
tracker's saved results without tracking, in pysot's layout (`DIR/NAME.txt`) or the GOT-10k toolkit's
(`DIR/NAME/NAME_001.txt`), `DIR` being named after the tracker.

Protocols: `--protocol ope` (default) reports pysot's OPE figures (success AUC, precision at 20 px,
normalised precision at 0.2) and GOT-10k's (AO, SR0.50, SR0.75), per sequence, overall and per attribute
(OTB's from pysot's dataset JSON, GOT-10k's object and motion classes, the synthetic challenges), with
plots. `--protocol reset` runs the VOT-style protocol (restart 5 frames after each failure) and reports
failures, accuracy and EAO. Sequences with no ground truth after the first frame (GOT-10k's test split)
are tracked and listed as unscored. On a GOT-10k dataset the results are also written in the toolkit's
layout and zipped for its evaluation server (`results/TRACKER.zip`).

With `--template-update RATE[:GATE]` every package runs the confidence-gated online template update with
that rate (and gate; the package's own gate when left out) instead of its config's: the packages must be
update-capable (exported with the update enabled, so that they have `update.pt`). Besides the scores it
prints, per tracker, the median tracking step in ms (crop, search, post-processing and update; frame
decoding or rendering excluded) and how many steps updated the template.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from siamstream.cli.library import existing_path
from siamstream.config import TemplateUpdateConfig, TrackerConfig

if TYPE_CHECKING:
    from siamstream.data import TrackingSequence
    from siamstream.evaluation import EvaluationReport
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


def parse_patterns(text: str) -> list[str]:
    """`name1,name2,glob*` as a list of sequence-name patterns (blanks around commas dropped)."""
    patterns = [pattern.strip() for pattern in text.split(",") if pattern.strip()]
    if not patterns:
        raise argparse.ArgumentTypeError(f"no sequence name in {text!r}")
    return patterns


def parse_eao_range(text: str) -> tuple[int, int]:
    """Parse `LOW:HIGH`, segment lengths with 1 <= LOW <= HIGH."""
    low_text, _, high_text = text.partition(":")
    try:
        low, high = int(low_text), int(high_text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"EAO range must be LOW:HIGH, got {text!r}") from error
    if not 1 <= low <= high:
        raise argparse.ArgumentTypeError(f"EAO range must satisfy 1 <= LOW <= HIGH, got {text!r}")
    return (low, high)


def add_parser(root: argparse._SubParsersAction) -> None:
    parser = root.add_parser(
        "eval",
        help="evaluate trackers or saved results: OPE (pysot, GOT-10k figures) or the reset protocol",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    trackers = parser.add_mutually_exclusive_group(required=True)
    trackers.add_argument(
        "--package",
        action="append",
        type=existing_path,
        help="tracker package directory (repeat to compare trackers)",
    )
    trackers.add_argument(
        "--results",
        action="append",
        type=existing_path,
        metavar="DIR",
        help="score saved results instead of tracking: DIR/NAME.txt (pysot) or DIR/NAME/NAME_001.txt "
        "(GOT-10k toolkit), DIR named after the tracker (repeat to compare trackers)",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", type=existing_path, help="dataset root (OTB, LaSOT or GOT-10k layout)")
    source.add_argument("--synthetic", type=int, metavar="N", help="generate N synthetic sequences instead")
    parser.add_argument(
        "--layout", choices=["otb", "lasot", "got10k"], help="dataset layout (default: detect)"
    )
    parser.add_argument(
        "--split",
        choices=["train", "val", "test"],
        default="val",
        help="GOT-10k split, when --dataset is the root holding train/, val/ and test/ (default: val)",
    )
    parser.add_argument(
        "--sequences",
        type=parse_patterns,
        metavar="NAMES",
        help="evaluate only these sequences: comma-separated names or globs (e.g. 'Basketball,Car*')",
    )
    parser.add_argument(
        "--protocol",
        choices=["ope", "reset"],
        default="ope",
        help="ope: one pass from the first frame (default); reset: VOT-style restarts after failures",
    )
    parser.add_argument(
        "--eao-range",
        type=parse_eao_range,
        metavar="LOW:HIGH",
        help="segment lengths the reset protocol's EAO averages over (default: 1 to the shortest "
        "sequence's length - 1; VOT2018 used 100:356)",
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


def load_sequences(args: argparse.Namespace) -> tuple[list[TrackingSequence], str | None]:
    """The sequences to evaluate (after `--sequences`) and the dataset's layout (None: synthetic)."""
    from siamstream.data import Challenge, detect_layout, open_dataset, synthetic_suite
    from siamstream.data.selection import select_sequences

    if args.dataset is not None:
        if args.challenge:
            raise ValueError("--challenge applies to --synthetic suites only")
        layout = args.layout or detect_layout(args.dataset)
        sequences: list[TrackingSequence] = list(open_dataset(args.dataset, layout, args.split))
    else:
        layout = None
        extra = frozenset(Challenge(name) for name in args.challenge)
        sequences = list(
            synthetic_suite(args.synthetic, args.seed, length=args.length, extra_challenges=extra)
        )
    if args.sequences:
        sequences = select_sequences(sequences, args.sequences)
    return sequences, layout


def check_options(args: argparse.Namespace) -> None:
    """Reject option combinations that cannot apply, before anything runs."""
    if args.results and args.protocol == "reset":
        raise ValueError("--protocol reset restarts the tracker after failures, so it needs --package")
    if args.results and args.template_update is not None:
        raise ValueError("--template-update applies to --package trackers only")
    if args.eao_range and args.protocol != "reset":
        raise ValueError("--eao-range applies to --protocol reset only")


def run_eval(args: argparse.Namespace) -> int:
    # Deferred: torch and OpenCV load when an evaluation runs, not whenever the parser is built.
    from siamstream.evaluation import evaluate_results

    check_options(args)
    sequences, layout = load_sequences(args)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.results:
        names = [folder.name for folder in args.results]
        if len(set(names)) != len(names):
            raise ValueError(f"two result folders have the same tracker name: {', '.join(names)}")
        reports = [evaluate_results(sequences, folder) for folder in args.results]
    elif args.protocol == "reset":
        return run_reset(args, sequences)
    else:
        reports = track_packages(args, sequences, layout)
    for report in reports:
        (args.out / f"{report.tracker}.json").write_text(report.to_json() + "\n")
        print(report.to_text())
    if any(report.sequences for report in reports):
        # Deferred further: matplotlib (the `train` extra) loads only when there is something to plot.
        from siamstream.evaluation.plots import plot_norm_precision, plot_precision, plot_success

        plot_success(reports, args.out / "success.png")
        plot_precision(reports, args.out / "precision.png")
        plot_norm_precision(reports, args.out / "norm_precision.png")
    print(f"reports and plots in {args.out}")
    return 0


def trackers(args: argparse.Namespace) -> list[tuple[str, OfflineTracker]]:
    """One offline tracker per package, with its report name; configs are checked before any is built."""
    from siamstream.package import read_package
    from siamstream.runner import PackageRunner
    from siamstream.tracking.offline import OfflineTracker

    packages = [read_package(package_dir) for package_dir in args.package]
    configs = [tracker_config(package, args.template_update) for package in packages]
    return [
        (name, OfflineTracker(config, PackageRunner(package, args.device)))
        for package, config, name in zip(packages, configs, report_names(packages), strict=True)
    ]


def track_packages(
    args: argparse.Namespace, sequences: list[TrackingSequence], layout: str | None
) -> list[EvaluationReport]:
    """Track every sequence with every package (OPE), writing the boxes under `out/results/NAME/`:
    pysot's layout, or the GOT-10k toolkit's (zipped) on a GOT-10k dataset."""
    import numpy as np

    from siamstream.data import write_boxes
    from siamstream.evaluation import evaluate, track_boxes, write_got10k_run, zip_submission

    reports, summaries = [], []
    for name, tracker in trackers(args):
        results_dir = args.out / "results" / name
        results_dir.mkdir(parents=True, exist_ok=True)
        log = StepLog()

        def track_fn(
            sequence: TrackingSequence,
            tracker: OfflineTracker = tracker,
            folder: Path = results_dir,
            log: StepLog = log,
        ) -> np.ndarray:
            seconds: list[float] = []
            boxes = track_boxes(tracker, sequence.frames(), sequence.init_box, seconds)
            log.step_ms += [step * 1e3 for step in seconds[1:]]
            if tracker.state is not None:
                log.updates += tracker.state.template_updates
            if layout == "got10k":
                write_got10k_run(folder, sequence.name, boxes, np.asarray(seconds))
            else:
                write_boxes(folder / f"{sequence.name}.txt", boxes)
            return boxes

        reports.append(evaluate(sequences, track_fn, name))
        if layout == "got10k":
            print(f"GOT-10k submission: {zip_submission(results_dir)}")
        summaries.append(log.summary(name))
    print("\n".join(summaries))
    return reports


def run_reset(args: argparse.Namespace, sequences: list[TrackingSequence]) -> int:
    """Track every sequence under the reset protocol with every package; one report per package."""
    from siamstream.evaluation import is_scored, reset_report, track_with_resets

    eao_range = args.eao_range or (1, max(1, min(len(sequence) for sequence in sequences) - 1))
    for name, tracker in trackers(args):
        runs = [
            (sequence, track_with_resets(tracker, sequence) if is_scored(sequence) else None)
            for sequence in sequences
        ]
        report = reset_report(name, runs, eao_range)
        (args.out / f"{name}.reset.json").write_text(report.to_json() + "\n")
        print(report.to_text())
    print(f"reports in {args.out}")
    return 0
