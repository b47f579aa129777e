"""`siamstream ingest`: run an RTSP camera worker (registered in the `siamstream.commands` group)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from siamstream.cli.main import CommandGroups


def add_commands(groups: CommandGroups) -> None:
    parser = groups.root.add_parser(
        "ingest",
        help="run an RTSP camera worker",
        description=(
            "Settings come from SIAMSTREAM_* environment variables (the store must be redis://) and the "
            "optional config file; camera settings from SIAMSTREAM_INGEST_* variables."
        ),
    )
    parser.add_argument(
        "--config", type=Path, help="JSON, TOML or .env settings file (SIAMSTREAM_CONFIG_FILE)"
    )
    parser.set_defaults(run=run_ingest_command)


def run_ingest_command(args: argparse.Namespace) -> int:
    # Deferred: torch, OpenCV and the stores load only when the worker actually runs.
    from siamstream_services.ingest.config import IngestSettings
    from siamstream_services.ingest.process import run_ingest
    from siamstream_services.settings import ServiceSettings, load_settings

    settings = load_settings(ServiceSettings, **({"config_file": args.config} if args.config else {}))
    asyncio.run(run_ingest(settings, load_settings(IngestSettings)))
    return 0
