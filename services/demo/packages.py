"""Which tracker package the demo and the benchmarks run, and stand-ins with random weights."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from siamstream.benchmark.tracker import random_network
from siamstream.package import export_package, read_package
from siamstream.registry import get_config

log = logging.getLogger(__name__)

# Where the trained demo tracker is kept, relative to the repository root (`make demo` runs there).
DEMO_PACKAGE = Path("models/packages/demo")
DEFAULT_TRACKER = "siamrpn_alex"


@dataclass(frozen=True)
class ChosenPackage:
    """A tracker package directory, its tracker, and whether its weights are random (no accuracy)."""

    root: Path
    tracker: str
    random_weights: bool


def export_random_package(tracker: str, directory: Path) -> Path:
    """Export `tracker` with seeded random weights into `directory/<tracker>` and return that path.

    Speed does not depend on the weights, so this is what the benchmarks time when given no package.
    """
    config = get_config(tracker)
    return export_package(random_network(config), config, directory / tracker).root


def choose_package(package: Path | None, tracker: str | None, scratch: Path) -> ChosenPackage:
    """The package given, else the trained demo package, else `tracker` exported with random weights.

    A given package, or the demo package when its directory exists, must be complete and hold `tracker`
    (when one is named). The random stand-in is written
    under `scratch` and logged as a warning, because its boxes say nothing about accuracy.
    """
    root = package or DEMO_PACKAGE
    if package is not None or DEMO_PACKAGE.exists():
        held = read_package(root).meta.tracker
        if tracker is not None and held != tracker:
            raise ValueError(f"package {root} holds {held!r}, not {tracker!r}")
        return ChosenPackage(root, held, random_weights=False)
    tracker = tracker or DEFAULT_TRACKER
    log.warning(
        "no trained demo package at %s: exporting %s with seeded RANDOM weights into %s; "
        "the boxes and accuracy figures are meaningless without trained weights",
        DEMO_PACKAGE,
        tracker,
        scratch,
    )
    return ChosenPackage(export_random_package(tracker, scratch), tracker, random_weights=True)
