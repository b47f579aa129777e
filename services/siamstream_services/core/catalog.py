"""The tracker packages a replica serves, read from the package directory of the settings."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from siamstream.package import META_FILE, TrackerPackage, read_package

from .sessions import ServedTracker


@dataclass(frozen=True)
class Catalog:
    """Packages for the inference backend, and the same trackers as the session manager sees them."""

    packages: tuple[TrackerPackage, ...]
    trackers: dict[str, ServedTracker]


def load_catalog(package_dir: Path, names: list[str]) -> Catalog:
    """Read the packages named in `names` under `package_dir` (every package there when `names` is empty).

    A package's id is a digest of its package.json, so replicas holding the same package agree on it and
    a session started on one package is never searched with another's weights.
    """
    if names:
        roots = [package_dir / name for name in names]
        missing = [root.name for root in roots if not root.is_dir()]
        if missing:
            raise ValueError(
                f"SIAMSTREAM_TRACKER_PACKAGES names {', '.join(missing)}, not in {package_dir.resolve()} "
                "(SIAMSTREAM_PACKAGE_DIR)"
            )
    else:
        roots = sorted(path.parent for path in package_dir.glob(f"*/{META_FILE}"))
    if not roots:
        raise ValueError(
            f"no tracker packages in {package_dir.resolve()}: set SIAMSTREAM_PACKAGE_DIR to a directory "
            "holding one package directory per tracker (`siamstream import-checkpoint` or `export` write one)"
        )
    packages, trackers = [], {}
    for root in roots:
        package = read_package(root)
        name = package.meta.tracker
        if name in trackers:
            raise ValueError(f"two packages in {package_dir} hold tracker {name!r}")
        digest = hashlib.sha256((root / META_FILE).read_bytes()).hexdigest()[:16]
        trackers[name] = ServedTracker(
            package.config,
            digest,
            precision=package.meta.precision,
            weights_sha256=package.meta.source.sha256,
            template_update=package.meta.template_update,
        )
        packages.append(package)
    return Catalog(tuple(packages), trackers)
