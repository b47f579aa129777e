"""`siamstream import-checkpoint` and `siamstream export`: weights in, tracker package out."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from siamstream.cli.evaluate import parse_update_override, with_template_update
from siamstream.cli.library import add_precision_argument, existing_path
from siamstream.config import Precision, TrackerConfig, merge_fields
from siamstream.presets import tracker_config

if TYPE_CHECKING:
    from siamstream.checkpoint import Checkpoint

SEARCH_OPTIONS = ("one_more_search", "adaptive_region")


def add_parsers(root: argparse._SubParsersAction) -> None:
    imported = root.add_parser(
        "import-checkpoint", help="load published pysot-family weights and write a tracker package"
    )
    imported.add_argument(
        "--tracker",
        required=True,
        help="registry name (see `siamstream models`) or reference config name (siamrpn_r50_l234_dwxcorr, "
        "with that config's hyperparameters)",
    )
    imported.add_argument("--weights", required=True, type=existing_path, help="state-dict file (.pth)")
    imported.add_argument("--out", required=True, type=Path, help="package directory to write")
    add_precision_argument(imported)
    add_search_argument(imported)
    add_compile_argument(imported)
    imported.set_defaults(run=import_checkpoint)

    exported = root.add_parser("export", help="write a tracker package from a SiamStream training checkpoint")
    exported.add_argument("--checkpoint", required=True, type=existing_path, help="checkpoint from training")
    exported.add_argument("--out", required=True, type=Path, help="package directory to write")
    exported.add_argument(
        "--template-update",
        type=parse_update_override,
        metavar="RATE[:GATE]",
        help="enable the online template update (update.pt) at this rate and gate (default gate: the "
        "checkpoint config's)",
    )
    add_precision_argument(exported)
    add_search_argument(exported)
    add_compile_argument(exported)
    exported.set_defaults(run=export_checkpoint)


def add_search_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--search",
        action="append",
        default=[],
        choices=SEARCH_OPTIONS,
        help="switch on one of SiamMargin's search options in the package's config (repeatable); a "
        "service serves the adaptive region's grown crops only for packages exported with it",
    )
    parser.add_argument(
        "--long-term",
        action="store_true",
        help="switch on long-term mode (re-detection over a larger region while LOST) in the package's "
        "config; a service serves its lost-search crops only for packages exported with it",
    )


def parse_buckets(text: str) -> tuple[int, ...]:
    """`1,4,16` -> (1, 4, 16): distinct positive row counts."""
    from siamstream.compiled import check_buckets

    try:
        return check_buckets([int(part) for part in text.split(",")])
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {error}") from None


def add_compile_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--compile-buckets",
        type=parse_buckets,
        default=(),
        metavar="ROWS[,ROWS...]",
        help="also compile the template and search stages ahead of time (AOTInductor, for this CPU and "
        "torch) for these batch sizes, e.g. 1,4,16; runners take them where they fit the machine and "
        "run a batch in the sizes that take the least time, as timed when compiled (about 30 s per "
        "size and search side for AlexNet, minutes for ResNet-50)",
    )


def with_search_options(config: TrackerConfig, options: list[str]) -> TrackerConfig:
    """`config` with the named `SearchConfig` options switched on, validated again (SiamFC and
    SiamBAN-ACM refuse them)."""
    if not options:
        return config
    return TrackerConfig.model_validate(
        merge_fields(config.model_dump(), {"search": dict.fromkeys(options, True)})
    )


def with_long_term(config: TrackerConfig, enabled: bool) -> TrackerConfig:
    """`config` with long-term mode switched on when `enabled`, validated again (SiamBAN-ACM refuses it)."""
    if not enabled:
        return config
    return TrackerConfig.model_validate(merge_fields(config.model_dump(), {"long_term": {"enabled": True}}))


def import_checkpoint(args: argparse.Namespace) -> int:
    # Deferred, here and below: torch loads when weights are read, not whenever the parser is built.
    from siamstream.checkpoint import CheckpointError, read_checkpoint, trackers_fitting

    checkpoint = read_checkpoint(args.weights)
    config = with_long_term(with_search_options(tracker_config(args.tracker), args.search), args.long_term)
    try:
        write_package(config, checkpoint, args.weights, args.out, args.precision, args.compile_buckets)
    except CheckpointError as error:
        fitting = trackers_fitting(checkpoint.state_dict)
        hint = f"it fits {', '.join(fitting)}" if fitting else "it fits no registered tracker"
        raise CheckpointError(f"{error}; {hint}") from None
    return 0


def export_checkpoint(args: argparse.Namespace) -> int:
    from siamstream.checkpoint import read_checkpoint, recorded_config

    checkpoint = read_checkpoint(args.checkpoint)
    config = recorded_config(checkpoint, args.checkpoint)
    if args.template_update is not None:
        config = with_template_update(config, args.template_update)
    config = with_long_term(with_search_options(config, args.search), args.long_term)
    write_package(config, checkpoint, args.checkpoint, args.out, args.precision, args.compile_buckets)
    return 0


def write_package(
    config: TrackerConfig,
    checkpoint: Checkpoint,
    weights: Path,
    out: Path,
    precision: Precision,
    compile_buckets: tuple[int, ...] = (),
) -> None:
    from siamstream.checkpoint import load_weights
    from siamstream.compiled import export_with_compiled_stages
    from siamstream.nn.network import build_network
    from siamstream.package import WeightsOrigin

    if compile_buckets and precision == Precision.FP16:
        raise ValueError("--compile-buckets compiles for the CPU, which runs fp32 or bf16, not fp16")
    network = build_network(config)
    load_weights(network, checkpoint.state_dict, config.name)
    package = export_with_compiled_stages(
        network,
        config,
        out,
        precision,
        WeightsOrigin(path=str(weights), sha256=checkpoint.sha256),
        compile_buckets,
    )
    compiled = f", compiled for batches of {', '.join(map(str, compile_buckets))}" if compile_buckets else ""
    print(
        f"wrote {package.root}: {config.name} ({precision.value}), embedding {package.meta.embedding_dim} "
        f"floats, outputs {', '.join(package.meta.search_outputs)}{compiled}"
    )
