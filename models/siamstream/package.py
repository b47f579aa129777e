"""Tracker packages: the two TorchScript stages plus the metadata needed to serve them.

A package is a directory holding `template.pt`, `search.pt` and `package.json` (docs/architecture.md,
contract 2), plus `update.pt` when its config enables the online template update (then `search.pt` also
returns the search features that `update.pt` reads). The same files run in-process and in Triton. A
package may also hold `compiled/`, its stages compiled ahead of time for one CPU and torch version
(`siamstream.compiled`), which in-process runners prefer where they fit.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field

from siamstream.config import Precision, TrackerConfig
from siamstream.nn.network import SiameseNetwork
from siamstream.nn.stages import script_stages
from siamstream.nn.template_update import SEARCH_FEATURES_OUTPUT, script_update_stages

PACKAGE_FORMAT = 1
TEMPLATE_FILE = "template.pt"
SEARCH_FILE = "search.pt"
UPDATE_FILE = "update.pt"
META_FILE = "package.json"


class PackageError(ValueError):
    """A directory that is not a readable tracker package."""


class WeightsOrigin(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="File the weights were read from ('' for random weights).")
    sha256: str = Field(description="Checksum of that file ('' for random weights).")


class PackageMeta(BaseModel):
    """Contents of package.json."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: int = PACKAGE_FORMAT
    tracker: str
    config: TrackerConfig
    precision: Precision
    embedding_dim: int
    search_outputs: tuple[str, ...]
    source: WeightsOrigin
    torch_version: str
    created: str
    template_update: bool = Field(
        default=False,
        description="The package has update.pt and its search stage also returns the search features.",
    )


class TrackerPackage(BaseModel):
    """A package on disk: where its files are and what it holds."""

    model_config = ConfigDict(frozen=True)

    root: Path
    meta: PackageMeta

    @property
    def template_path(self) -> Path:
        return self.root / TEMPLATE_FILE

    @property
    def search_path(self) -> Path:
        return self.root / SEARCH_FILE

    @property
    def update_path(self) -> Path:
        return self.root / UPDATE_FILE

    @property
    def config(self) -> TrackerConfig:
        return self.meta.config


def export_package(
    network: SiameseNetwork,
    config: TrackerConfig,
    out_dir: Path,
    precision: Precision = Precision.FP32,
    source: WeightsOrigin | None = None,
) -> TrackerPackage:
    """Script the stages of `network` and write them with their metadata into `out_dir`.

    With `config.template_update.enabled` the search stage also returns the search features and the
    template update stage is written as `update.pt`. `siamstream.compiled.compile_stages` may then add
    compiled stages.
    """
    template_stage, search_stage = script_stages(network, precision)
    search_outputs = tuple(network.search_output_names)
    update_stage = None
    if config.template_update.enabled:
        search_stage, update_stage = script_update_stages(network, config, precision)
        search_outputs = (*search_outputs, SEARCH_FEATURES_OUTPUT)
    out_dir.mkdir(parents=True, exist_ok=True)
    template_stage.save(str(out_dir / TEMPLATE_FILE))
    search_stage.save(str(out_dir / SEARCH_FILE))
    if update_stage is not None:
        update_stage.save(str(out_dir / UPDATE_FILE))
    meta = PackageMeta(
        tracker=config.name,
        config=config,
        precision=precision,
        embedding_dim=network.embedding_dim,
        search_outputs=search_outputs,
        source=source or WeightsOrigin(path="", sha256=""),
        torch_version=torch.__version__,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        template_update=update_stage is not None,
    )
    (out_dir / META_FILE).write_text(meta.model_dump_json(indent=2) + "\n")
    return TrackerPackage(root=out_dir, meta=meta)


def read_package(root: str | Path) -> TrackerPackage:
    """Read and validate a package directory."""
    root = Path(root)
    meta_path = root / META_FILE
    if not meta_path.is_file():
        raise PackageError(f"{root} is not a tracker package: {META_FILE} is missing")
    try:
        meta = PackageMeta.model_validate(json.loads(meta_path.read_text()))
    except (json.JSONDecodeError, ValueError) as error:
        raise PackageError(f"{meta_path} is not valid package metadata: {error}") from error
    if meta.format != PACKAGE_FORMAT:
        raise PackageError(f"{meta_path} has format {meta.format}; this version reads {PACKAGE_FORMAT}")
    package = TrackerPackage(root=root, meta=meta)
    stages = [package.template_path, package.search_path]
    if meta.template_update:
        stages.append(package.update_path)
    for stage in stages:
        if not stage.is_file():
            raise PackageError(f"{root} is not a complete tracker package: {stage.name} is missing")
    return package
