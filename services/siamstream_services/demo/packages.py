"""Which tracker package the demo and the benchmarks run, and stand-ins with random weights."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import siamstream
from siamstream.benchmark.tracker import random_network
from siamstream.package import export_package, read_package
from siamstream.registry import get_config
from siamstream_services.settings import DEMO_PACKAGE_ENV

log = logging.getLogger(__name__)

# The trained demo tracker sits beside the library (models/packages/demo next to models/siamstream), so
# it is found from any working directory of a checkout or an editable install.
DEMO_PACKAGE = Path(siamstream.__file__).resolve().parent.parent / "packages" / "demo"
DEFAULT_TRACKER = "siamrpn_alex"


class NoTrainedPackage(FileNotFoundError):
    """No package was given and the trained demo package is nowhere to be found."""


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


def demo_package() -> Path:
    """The trained demo package: `$SIAMSTREAM_DEMO_PACKAGE` when set, else the one beside the library."""
    named = os.environ.get(DEMO_PACKAGE_ENV)
    return Path(named) if named else DEMO_PACKAGE


def choose_package(package: Path | None, tracker: str | None) -> ChosenPackage:
    """The package given, else the trained demo package (`demo_package()`).

    The package must be complete and hold `tracker` (when one is named). Without a package given and
    without the demo package, `NoTrainedPackage` says how to name one: a silent fallback to random weights
    would print boxes and accuracy figures that mean nothing.
    """
    root = package or demo_package()
    if package is None and not root.is_dir():
        raise NoTrainedPackage(
            f"no trained demo package at {root}: name one with --package DIR or {DEMO_PACKAGE_ENV}=DIR, or "
            "ask for a seeded random network, whose boxes and accuracy mean nothing (demo: --random-weights, "
            "soak: --tracker NAME)"
        )
    held = read_package(root).meta.tracker
    if tracker is not None and held != tracker:
        raise ValueError(f"package {root} holds {held!r}, not {tracker!r}")
    return ChosenPackage(root, held, random_weights=False)


def random_package(tracker: str | None, scratch: Path) -> ChosenPackage:
    """`tracker` (default `DEFAULT_TRACKER`) exported with seeded random weights under `scratch`."""
    tracker = tracker or DEFAULT_TRACKER
    log.warning(
        "exporting %s with seeded RANDOM weights into %s: the boxes and accuracy figures are meaningless",
        tracker,
        scratch,
    )
    return ChosenPackage(export_random_package(tracker, scratch), tracker, random_weights=True)
