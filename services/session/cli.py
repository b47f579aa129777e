"""`siamstream serve`: run the gRPC session service (registered in the `siamstream.commands` group)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from siamstream.cli.main import CommandGroups


def add_commands(groups: CommandGroups) -> None:
    parser = groups.root.add_parser(
        "serve",
        help="run the gRPC tracking service",
        description="Settings come from SIAMSTREAM_* environment variables and the optional config file.",
    )
    parser.add_argument(
        "--config", type=Path, help="JSON, TOML or .env settings file (SIAMSTREAM_CONFIG_FILE)"
    )
    parser.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    # Deferred: torch, grpc and the stores load only when the service actually runs.
    from siamstream_services.session.server import serve
    from siamstream_services.settings import ServiceSettings

    settings = ServiceSettings(config_file=args.config) if args.config else ServiceSettings()
    asyncio.run(serve(settings))
    return 0
