"""Argument parsing and dispatch of the `siamstream` console script.

Command groups register themselves through the `siamstream.commands` entry-point group, so the library
(`models/`) never imports the services that add their own commands (`siamstream client`, `siamstream
serve`, `siamstream bench service`). An entry point names the extras its commands need
(`module:add_commands [service,train]`); building the parser imports none of them, so a group whose
extras are not installed leaves the others working, and its commands, when run, name the extras to
install instead of failing with a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points


@dataclass(frozen=True)
class CommandGroups:
    """Where command groups attach their subcommands."""

    root: argparse._SubParsersAction
    bench: argparse._SubParsersAction


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="siamstream", description="Siamese single-object tracking.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    root = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    bench_parser = root.add_parser("bench", help="measure speed (prints figures, never pass/fail)")
    bench = bench_parser.add_subparsers(dest="bench_command", required=True, metavar="TARGET")
    groups = CommandGroups(root=root, bench=bench)
    for entry in sorted(entry_points(group="siamstream.commands"), key=lambda e: e.name):
        existing = {*root.choices.values(), *bench.choices.values()}
        entry.load()(groups)
        for command in {*root.choices.values(), *bench.choices.values()} - existing:
            command.set_defaults(extras=tuple(entry.extras))
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        status = args.run(args)
    except ImportError as error:
        extras = getattr(args, "extras", ())
        # A module of this project that fails to import is a bug, never a missing extra.
        if not extras or (error.name or "").split(".")[0] in ("siamstream", "siamstream_services"):
            raise
        wanted = ",".join(extras)
        print(
            f"siamstream {args.command}: error: {error}; this command needs the extras [{wanted}]: "
            f"pip install 'siamstream[{wanted}]'",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    except (ValueError, KeyError, FileNotFoundError) as error:
        # Expected user errors (bad box, unknown tracker, unreadable file): one line, no traceback.
        print(f"siamstream {args.command}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    raise SystemExit(status or 0)
