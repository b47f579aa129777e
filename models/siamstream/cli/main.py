"""Argument parsing and dispatch of the `siamstream` console script.

Command groups register themselves through the `siamstream.commands` entry-point group, so the library
(`models/`) never imports the services that add their own commands (`siamstream client`, `siamstream
serve`, `siamstream bench service`).
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
        entry.load()(groups)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        status = args.run(args)
    except (ValueError, KeyError, FileNotFoundError) as error:
        # Expected user errors (bad box, unknown tracker, unreadable file): one line, no traceback.
        print(f"siamstream {args.command}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    raise SystemExit(status or 0)
