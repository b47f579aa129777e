"""`siamstream train`: train a registered tracker on a dataset folder or synthetic sequences."""

from __future__ import annotations

import argparse
from pathlib import Path

from siamstream.cli.library import existing_path


def add_parser(root: argparse._SubParsersAction) -> None:
    parser = root.add_parser("train", help="train a tracker's network on image pairs, checkpoint each epoch")
    parser.add_argument("--tracker", required=True, help="registry name (see `siamstream models`)")
    parser.add_argument(
        "--data", required=True, help="dataset folder, or synthetic:N for N generated sequences"
    )
    parser.add_argument(
        "--layout",
        choices=["got10k", "lasot", "otb", "vid", "coco"],
        help="dataset layout (default: detected)",
    )
    parser.add_argument("--epochs", type=int, help="epochs in total (default: the training config's)")
    parser.add_argument("--out", required=True, type=Path, help="folder for checkpoints, metrics.csv, curves")
    parser.add_argument(
        "--resume", type=existing_path, help="checkpoint to continue from (its training config)"
    )
    parser.add_argument("--init", type=existing_path, help="weights to start from (matching names only)")
    parser.add_argument(
        "--config", type=existing_path, help="TrainingConfig as JSON (default: the tracker's)"
    )
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1)")
    parser.add_argument("--batch-size", type=int, help="pairs per step")
    parser.add_argument("--pairs-per-epoch", type=int, help="pairs drawn per epoch")
    parser.add_argument("--workers", type=int, help="data-loader worker processes")
    parser.add_argument("--objective", help="registered objective (e.g. rpn_margin)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    import torch

    from siamstream.registry import get_config
    from siamstream.training import TrainingConfig, default_training_config, open_training_data, train

    tracker = get_config(args.tracker)
    if args.resume is not None:
        saved = torch.load(args.resume, map_location="cpu", weights_only=True)
        training = TrainingConfig.model_validate(saved["training"])
    elif args.config is not None:
        training = TrainingConfig.model_validate_json(args.config.read_text())
    else:
        training = default_training_config(tracker)
    overrides = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "pairs_per_epoch": args.pairs_per_epoch,
        "num_workers": args.workers,
        "objective": args.objective,
    }
    update = {key: value for key, value in overrides.items() if value is not None}
    training = TrainingConfig.model_validate({**training.model_dump(), **update})
    sequences = open_training_data(args.data, args.layout)
    run = train(
        tracker,
        training,
        sequences,
        args.out,
        args.device,
        args.resume,
        args.init,
        progress=not args.no_progress,
    )
    last = run.step_losses[-1]["total"] if run.step_losses else float("nan")
    print(f"trained {tracker.name} to epoch {run.epochs_completed}, last loss {last:.4f} -> {args.out}")
    return 0
