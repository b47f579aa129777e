"""Library commands: `models`, `import-checkpoint`, `export`, `track`, `train`, `eval`, `bench tracker`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from siamstream.cli.main import CommandGroups
from siamstream.config import Precision


def add_commands(groups: CommandGroups) -> None:
    # Imported here, not at the top: the command modules import the argument types below from this module.
    from siamstream.cli import benchmark, packaging, track

    models = groups.root.add_parser("models", help="list the registered trackers and their configs")
    models.add_argument("--json", action="store_true", help="print the full configs as JSON")
    models.set_defaults(run=list_models)

    packaging.add_parsers(groups.root)
    track.add_parser(groups.root)
    benchmark.add_parser(groups.bench)


def add_training_commands(groups: CommandGroups) -> None:
    """`train` and `eval`, a group of their own: their plots need the `train` extra (matplotlib)."""
    from siamstream.cli import evaluate, train

    train.add_parser(groups.root)
    evaluate.add_parser(groups.root)


def add_precision_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--precision",
        type=Precision,
        choices=list(Precision),
        default=Precision.FP32,
        help="numeric precision baked into the package (bf16: CPU/CUDA, fp16: CUDA)",
    )


def list_models(args: argparse.Namespace) -> int:
    from siamstream.registry import get_config, list_trackers

    configs = [get_config(name) for name in list_trackers()]
    if args.json:
        print(json.dumps([config.model_dump(mode="json") for config in configs], indent=2))
        return 0
    for config in configs:
        crop = config.crop
        print(
            f"{config.name:24s} {config.family.value:8s} {config.backbone.kind:18s} "
            f"z{crop.exemplar_size} x{crop.instance_size} score{crop.score_size:<3d} {config.description}"
        )
    return 0


def parse_box(text: str) -> tuple[float, float, float, float]:
    """Parse `x,y,w,h` (image pixels)."""
    parts = text.split(",")
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(f"box must be x,y,w,h, got {text!r}")
    try:
        x, y, w, h = (float(part) for part in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"box must be four numbers x,y,w,h, got {text!r}") from None
    return x, y, w, h


def existing_path(text: str) -> Path:
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text} does not exist")
    return path


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value
