"""`siamstream serve` runs the gRPC session service, `siamstream health` probes it (both registered in the
`siamstream.commands` group)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from siamstream.cli.main import CommandGroups

# Well under the 5 s HEALTHCHECK timeout of the Dockerfile, which also covers the command's start-up.
HEALTH_TIMEOUT_S = 2.0


def positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text}")
    return value


class SettingsHelp(argparse.Action):
    """`-h/--help` that lists every setting: built only when asked for, so that building the parser for
    another command (the health probe runs every few seconds) never loads the settings models."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        from siamstream_services.settings_reference import settings_help

        parser.epilog = settings_help()
        parser.print_help()
        parser.exit()


def add_commands(groups: CommandGroups) -> None:
    parser = groups.root.add_parser(
        "serve",
        help="run the gRPC tracking service",
        description="Settings come from SIAMSTREAM_* environment variables and the optional config file "
        "(listed below; docs/configuration.md has the same list).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,
    )
    parser.add_argument("-h", "--help", action=SettingsHelp, help="show this help, every setting, and exit")
    parser.add_argument(
        "--config", type=Path, help="JSON, TOML or .env settings file (SIAMSTREAM_CONFIG_FILE)"
    )
    parser.set_defaults(run=run_serve)

    health = groups.root.add_parser(
        "health",
        help="check that the tracking service is SERVING (exit 0) or not (exit 1)",
        description=(
            "One grpc.health.v1 Check over plaintext, on SIAMSTREAM_HEALTH_LISTEN_ADDRESS when it is set, "
            "else on SIAMSTREAM_LISTEN_ADDRESS (a 0.0.0.0 or [::] host is reached over loopback). Settings "
            "come from the environment, as for `serve`."
        ),
    )
    health.add_argument(
        "--timeout",
        type=positive_seconds,
        default=HEALTH_TIMEOUT_S,
        help=f"seconds to wait for the answer (default {HEALTH_TIMEOUT_S})",
    )
    health.set_defaults(run=run_health)


def run_serve(args: argparse.Namespace) -> int:
    from siamstream_services.logs import configure_logging
    from siamstream_services.settings import ServiceSettings, load_settings

    settings = load_settings(ServiceSettings, **({"config_file": args.config} if args.config else {}))
    # The console script's `-v` asks for DEBUG whatever SIAMSTREAM_LOG_LEVEL says.
    configure_logging(settings.log_format, "DEBUG" if getattr(args, "verbose", False) else settings.log_level)
    # Deferred, and after the settings: torch, grpc and the stores load only for a service that will run.
    from siamstream_services.grpc_api.server import serve

    asyncio.run(serve(settings))
    return 0


def run_health(args: argparse.Namespace) -> int:
    from siamstream_services.grpc_api.probe import check_health, probe_address
    from siamstream_services.settings import ServiceSettings, load_settings

    try:
        settings = load_settings(ServiceSettings)
    except (ValueError, OSError) as error:
        # `siamstream` exits 2 on a settings error, a status Docker reserves: unhealthy is 1.
        print(f"siamstream health: {error}", file=sys.stderr)
        return 1
    address = probe_address(settings)
    status = check_health(address, args.timeout)
    print(f"{address}: {status}")
    return 0 if status == "SERVING" else 1
