"""Tracker packages: CLI import writes TorchScript stages that equal the eager network."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from siamstream.nn.network import build_network
from siamstream.package import PackageError, read_package
from siamstream.registry import get_config, list_trackers
from siamstream.runner import PackageRunner
from tests.models.package_round_trip import FRAMES, track_through_package
from tests.models.reference_layouts import reference_state_dict

SIAMSTREAM = [sys.executable, "-m", "siamstream.cli"]


def import_checkpoint(tracker: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    weights = tmp_path / f"{tracker}.pth"
    torch.save(reference_state_dict(tracker), weights)
    command = [*SIAMSTREAM, "import-checkpoint", "--tracker", tracker, "--weights", str(weights)]
    return subprocess.run(
        [*command, "--out", str(tmp_path / "package"), *extra], capture_output=True, text=True, timeout=300
    )


def test_imported_package_runs_like_the_eager_network(tmp_path: Path) -> None:
    completed = import_checkpoint("siamrpn_alex", tmp_path)
    assert completed.returncode == 0, completed.stderr
    package = read_package(tmp_path / "package")
    meta = json.loads((tmp_path / "package" / "package.json").read_text())
    assert meta["tracker"] == "siamrpn_alex"
    assert meta["source"]["sha256"] == package.meta.source.sha256 and len(meta["source"]["sha256"]) == 64
    assert meta["torch_version"] == torch.__version__
    assert meta["search_outputs"] == ["cls", "loc"]

    config = get_config("siamrpn_alex")
    network = build_network(config).eval()
    network.load_state_dict(reference_state_dict("siamrpn_alex"), strict=False)
    rng = np.random.default_rng(0)
    crop_z = rng.integers(0, 256, (2, 3, 127, 127), dtype=np.uint8)
    crop_x = rng.integers(0, 256, (2, 3, 287, 287), dtype=np.uint8)
    box_prior = np.array([[40.0, 60.0], [30.0, 30.0]], dtype=np.float32)
    runner = PackageRunner(package)
    embedding = runner.template(crop_z, box_prior)
    cls, loc = runner.search(embedding, crop_x)
    with torch.inference_mode():
        eager_embedding = network.template_embedding(
            torch.from_numpy(crop_z).float(), torch.from_numpy(box_prior)
        )
        eager_cls, eager_loc = network.search_outputs(eager_embedding, torch.from_numpy(crop_x).float())
    np.testing.assert_allclose(embedding, eager_embedding.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(cls, eager_cls.numpy(), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(loc, eager_loc.numpy(), rtol=1e-4, atol=1e-3)
    assert cls.shape == (2, 10, 21, 21) and loc.shape == (2, 20, 21, 21)


def test_cli_reports_a_mismatched_checkpoint_without_a_traceback(tmp_path: Path) -> None:
    weights = tmp_path / "wrong.pth"
    torch.save(reference_state_dict("siamban_r50"), weights)
    completed = subprocess.run(
        [
            *SIAMSTREAM,
            "import-checkpoint",
            "--tracker",
            "siamrpn_alex",
            "--weights",
            str(weights),
            "--out",
            str(tmp_path / "package"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 2
    assert "weights do not fit tracker 'siamrpn_alex'" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not (tmp_path / "package").exists()


def test_unknown_tracker_names_the_known_ones(tmp_path: Path) -> None:
    completed = import_checkpoint("siamrpn_alex", tmp_path)
    assert completed.returncode == 0
    weights = tmp_path / "siamrpn_alex.pth"
    completed = subprocess.run(
        [*SIAMSTREAM, "import-checkpoint", "--tracker", "nope", "--weights", str(weights), "--out", "x"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 2 and "unknown tracker 'nope'" in completed.stderr
    assert "siamrpnpp_r50" in completed.stderr


def test_incomplete_package_is_refused(tmp_path: Path) -> None:
    assert import_checkpoint("siamrpn_alex", tmp_path).returncode == 0
    (tmp_path / "package" / "search.pt").unlink()
    with pytest.raises(PackageError, match=r"search\.pt is missing"):
        read_package(tmp_path / "package")
    with pytest.raises(PackageError, match=r"package\.json is missing"):
        read_package(tmp_path)


@pytest.mark.parametrize(
    "name", [name for name in list_trackers() if get_config(name).backbone.kind.startswith("small_staged")]
)
def test_small_backbone_tracker_packages_track_like_the_eager_network(name: str, tmp_path: Path) -> None:
    trip = track_through_package(name, tmp_path)
    assert trip.package.meta.tracker == name and trip.package.config == get_config(name)
    assert [result.frame_index for result in trip.packaged] == list(range(FRAMES))
    for packaged, eager in zip(trip.packaged[1:], trip.eager[1:], strict=True):
        assert packaged.bbox == pytest.approx(eager.bbox, abs=1e-2)
        assert packaged.score == pytest.approx(eager.score, abs=1e-4)
