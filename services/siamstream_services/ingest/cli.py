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
    from siamstream_services.cameras.config import IngestSettings
    from siamstream_services.ingest.process import run_ingest
    from siamstream_services.logs import configure_logging
    from siamstream_services.settings import ServiceSettings, load_settings

    settings = load_settings(ServiceSettings, **({"config_file": args.config} if args.config else {}))
    camera_settings = load_settings(IngestSettings)
    # The console script's `-v` asks for DEBUG whatever SIAMSTREAM_LOG_LEVEL says.
    configure_logging(settings.log_format, "DEBUG" if getattr(args, "verbose", False) else settings.log_level)
    asyncio.run(run_ingest(settings, camera_settings))
    return 0
