"""`siamstream triton-repository`: a Triton model repository from tracker packages.

Registered in the `siamstream.commands` group. It wraps `write_model_repository`, so the repository an
operator deploys and the one the tests serve come from the same generator.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from siamstream.cli.library import non_negative_int, positive_int
from siamstream.cli.main import CommandGroups

# Command-line spelling of each repository form (`RepositoryForm` values use an underscore).
FORMS = {"production": "production", "cpu-test": "cpu_test"}


def add_commands(groups: CommandGroups) -> None:
    parser = groups.root.add_parser(
        "triton-repository",
        help="write a Triton model repository from tracker packages",
        description=(
            "Each package gives <tracker>_template and <tracker>_search (and <tracker>_update when it was "
            "exported with the template update). The production form "
            "runs TorchScript on GPU in the official Triton image; cpu-test runs the same model.pt through "
            "the python backend (nvidia-pytriton's tritonserver, tests and development)."
        ),
    )
    parser.add_argument(
        "--package", required=True, action="append", type=Path, help="tracker package directory (repeatable)"
    )
    parser.add_argument("--out", required=True, type=Path, help="model repository directory to write")
    parser.add_argument("--form", required=True, choices=list(FORMS), help="repository form")
    # Unset values keep the settings' (TritonBatchingSettings: SIAMSTREAM_TRITON_*, else its defaults).
    parser.add_argument(
        "--max-batch",
        type=positive_int,
        help="max_batch_size of every model (overrides SIAMSTREAM_TRITON_MAX_BATCH_SIZE)",
    )
    parser.add_argument(
        "--queue-delay-us",
        type=non_negative_int,
        help=(
            "dynamic batcher's max_queue_delay_microseconds "
            "(overrides SIAMSTREAM_TRITON_MAX_QUEUE_DELAY_MICROSECONDS)"
        ),
    )
    parser.set_defaults(run=run_triton_repository)


def run_triton_repository(args: argparse.Namespace) -> int:
    # Deferred: torch and tritonclient load only when the command actually runs.
    from siamstream.package import read_package
    from siamstream_services.inference.triton_repository import RepositoryForm, write_model_repository
    from siamstream_services.settings import TritonBatchingSettings, load_settings

    packages = [read_package(path) for path in args.package]
    trackers = [package.meta.tracker for package in packages]
    if len(set(trackers)) != len(trackers):
        raise ValueError(f"two packages hold the same tracker: {', '.join(trackers)}")
    overrides = {"max_batch_size": args.max_batch, "max_queue_delay_microseconds": args.queue_delay_us}
    given = {name: value for name, value in overrides.items() if value is not None}
    # Flags and environment checked together: a bad value is a SettingsError naming its variable.
    batching = load_settings(TritonBatchingSettings, **given)
    names = write_model_repository(
        packages, args.out, form=RepositoryForm(FORMS[args.form]), batching=batching
    )
    print(f"wrote {args.out} ({args.form}): {', '.join(names)}")
    return 0
