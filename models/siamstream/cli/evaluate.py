"""`siamstream eval`: one-pass evaluation of tracker packages on a dataset or a synthetic suite."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from siamstream.cli.library import existing_path
from siamstream.data import TrackingSequence, open_dataset, synthetic_suite, write_boxes
from siamstream.evaluation import evaluate, plot_norm_precision, plot_precision, plot_success
from siamstream.package import read_package
from siamstream.runner import TorchScriptRunner
from siamstream.tracking.offline import OfflineTracker


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
    parser.add_argument("--out", required=True, type=Path, help="folder for results, reports and plots")
    parser.add_argument("--device", default="cpu", help="torch device of the models")
    parser.set_defaults(run=run_eval)


def track_boxes(tracker: OfflineTracker, sequence: TrackingSequence) -> np.ndarray:
    """Predicted `xywh` boxes for every frame; row 0 is the initial box."""
    results = tracker.track_sequence(sequence.frames(), tuple(float(v) for v in sequence.init_box))
    return np.array([result.bbox for result in results], dtype=np.float64)


def run_eval(args: argparse.Namespace) -> int:
    if args.dataset is not None:
        sequences: list[TrackingSequence] = list(open_dataset(args.dataset, args.layout))
    else:
        sequences = list(synthetic_suite(count=args.synthetic, seed=args.seed))
    reports = []
    for package_dir in args.package:
        package = read_package(package_dir)
        name = package.meta.tracker
        tracker = OfflineTracker(package.config, TorchScriptRunner(package, args.device))
        results_dir = args.out / "results" / name
        results_dir.mkdir(parents=True, exist_ok=True)

        def track_fn(
            sequence: TrackingSequence, tracker: OfflineTracker = tracker, folder: Path = results_dir
        ):
            boxes = track_boxes(tracker, sequence)
            write_boxes(folder / f"{sequence.name}.txt", boxes)
            return boxes

        report = evaluate(sequences, track_fn, name)
        (args.out / f"{name}.json").write_text(report.to_json() + "\n")
        print(report.to_text())
        reports.append(report)
    plot_success(reports, args.out / "success.png")
    plot_precision(reports, args.out / "precision.png")
    plot_norm_precision(reports, args.out / "norm_precision.png")
    print(f"reports and plots in {args.out}")
    return 0
