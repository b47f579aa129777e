"""SiamStream: Siamese single-object trackers, their packages and the offline tools.

    from siamstream import Tracker
    tracker = Tracker.from_package("models/packages/demo")

The names below load on first use (module `__getattr__`), so that `import siamstream`, which every
`siamstream` command does, loads neither torch nor OpenCV nor the package metadata.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from siamstream.api import FrameResult, MultiTracker, Tracker

__all__ = ["FrameResult", "MultiTracker", "Tracker", "__version__"]

_API = ("FrameResult", "MultiTracker", "Tracker")
# The version of a tree imported without being installed (no distribution metadata to read).
_UNKNOWN_VERSION = "0+unknown"


def _installed_version() -> str:
    """The installed distribution's version (PEP 440), or `_UNKNOWN_VERSION`."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("siamstream")
    except PackageNotFoundError:
        return _UNKNOWN_VERSION


def __getattr__(name: str) -> object:
    if name in _API:
        return getattr(import_module("siamstream.api"), name)
    if name == "__version__":
        return _installed_version()
    raise AttributeError(f"module 'siamstream' has no attribute {name!r}")
