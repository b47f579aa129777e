"""Checkpoint -> package -> OfflineTracker for one registered tracker, beside the same tracker run eagerly.

Shared by the per-tracker test modules. The weights are the network's own random initialisation with
randomised batch-norm statistics (a reference-style all-positive random state dict would overflow deep
ResNet-50 networks), saved as a DataParallel training snapshot.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from siamstream.checkpoint import load_weights, read_checkpoint
from siamstream.config import TrackerConfig
from siamstream.data.synthetic import SequenceSpec, generate_sequence
from siamstream.nn.network import SiameseNetwork, build_network
from siamstream.nn.stages import SearchStage, TemplateStage
from siamstream.package import TrackerPackage, WeightsOrigin, export_package, read_package
from siamstream.registry import get_config
from siamstream.runner import PackageRunner
from siamstream.tracking.offline import OfflineTracker
from siamstream.tracking.state import TrackResult
from tests.models.reference_layouts import randomise_running_statistics

FRAMES = 3


class EagerRunner:
    """The two stages of an eager network on numpy inputs (the offline `StageRunner`)."""

    def __init__(self, network: SiameseNetwork) -> None:
        self._template = TemplateStage(network)
        self._search = SearchStage(network)

    def template(self, crop_z: np.ndarray, box_prior: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self._template(torch.from_numpy(crop_z), torch.from_numpy(box_prior)).numpy()

    def search(self, template_embedding: np.ndarray, crop_x: np.ndarray) -> tuple[np.ndarray, ...]:
        with torch.inference_mode():
            outputs = self._search(torch.from_numpy(template_embedding), torch.from_numpy(crop_x))
        return tuple(output.numpy() for output in outputs)


class RoundTrip(NamedTuple):
    config: TrackerConfig
    package: TrackerPackage
    packaged: list[TrackResult]  # tracked through the package's TorchScript stages
    eager: list[TrackResult]  # tracked by the eager network the checkpoint was saved from


def trained_like_network(config: TrackerConfig, seed: int) -> SiameseNetwork:
    torch.manual_seed(seed)
    network = build_network(config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in network.modules():
            randomise_running_statistics(module, generator)
    return network


def track_through_package(name: str, tmp_path: Path) -> RoundTrip:
    """Save a snapshot of `name`'s network, import it into a package, and track a short synthetic
    sequence with the package and with the eager network."""
    config = get_config(name)
    network = trained_like_network(config, seed=7)
    weights = tmp_path / "checkpoint_e1.pth"
    snapshot = {f"module.{key}": value for key, value in network.state_dict().items()}
    torch.save({"epoch": 1, "state_dict": snapshot, "optimizer": {}}, weights)

    checkpoint = read_checkpoint(weights)
    loaded = build_network(config)
    load_weights(loaded, checkpoint.state_dict, name)
    export_package(
        loaded,
        config,
        tmp_path / "package",
        source=WeightsOrigin(path=str(weights), sha256=checkpoint.sha256),
    )
    package = read_package(tmp_path / "package")

    sequence = generate_sequence(SequenceSpec(width=320, height=240, length=FRAMES, seed=3))
    frames = list(sequence.frames())
    init_box = [float(v) for v in sequence.init_box]
    packaged = OfflineTracker(package.config, PackageRunner(package)).track_sequence(frames, init_box)
    eager = OfflineTracker(config, EagerRunner(network)).track_sequence(frames, init_box)
    return RoundTrip(config, package, packaged, eager)
