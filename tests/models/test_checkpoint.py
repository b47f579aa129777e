"""Checkpoint import: reference layouts load strictly, mismatches and corrupt files fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from siamstream.checkpoint import CheckpointError, load_weights, read_checkpoint
from siamstream.nn.network import build_network
from siamstream.registry import get_config, list_trackers
from tests.models.reference_layouts import reference_state_dict


@pytest.fixture(scope="module", params=list_trackers())
def tracker(request: pytest.FixtureRequest) -> str:
    return request.param


def test_bare_state_dict_loads_with_its_values(tracker: str, tmp_path: Path) -> None:
    weights = reference_state_dict(tracker)
    path = tmp_path / "model.pth"
    torch.save(weights, path)
    network = build_network(get_config(tracker))
    load_weights(network, read_checkpoint(path).state_dict, tracker)
    loaded = network.state_dict()
    for key, value in weights.items():
        assert torch.equal(loaded[key], value), key


def test_wrapped_dataparallel_snapshot_loads(tracker: str, tmp_path: Path) -> None:
    weights = reference_state_dict(tracker, seed=1)
    path = tmp_path / "checkpoint_e20.pth"
    snapshot = {"epoch": 20, "state_dict": {f"module.{k}": v for k, v in weights.items()}, "optimizer": {}}
    torch.save(snapshot, path)
    checkpoint = read_checkpoint(path)
    assert set(checkpoint.state_dict) == set(weights)
    load_weights(build_network(get_config(tracker)), checkpoint.state_dict, tracker)


def test_mismatched_keys_and_shapes_are_all_listed(tmp_path: Path) -> None:
    weights = reference_state_dict("siamrpn_alex")
    weights.pop("backbone.features.0.weight")
    weights["rpn_head.extra.weight"] = torch.zeros(1)
    weights["rpn_head.cls.head.3.bias"] = torch.zeros(7)
    with pytest.raises(CheckpointError) as error:
        load_weights(build_network(get_config("siamrpn_alex")), weights, "siamrpn_alex")
    message = str(error.value)
    assert "missing (1): backbone.features.0.weight" in message
    assert "unexpected (1): rpn_head.extra.weight" in message
    assert "mis-shaped (1): rpn_head.cls.head.3.bias (file (7,), model (10,))" in message


def test_weights_of_another_tracker_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "siamban.pth"
    torch.save(reference_state_dict("siamban_r50"), path)
    with pytest.raises(CheckpointError, match="weights do not fit tracker 'siamrpnpp_r50'"):
        load_weights(
            build_network(get_config("siamrpnpp_r50")), read_checkpoint(path).state_dict, "siamrpnpp_r50"
        )


def test_corrupt_and_foreign_files_fail_clearly(tmp_path: Path) -> None:
    path = tmp_path / "truncated.pth"
    torch.save(reference_state_dict("siamrpn_alex"), path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="not a readable PyTorch file"):
        read_checkpoint(path)
    listing = tmp_path / "list.pth"
    torch.save([1, 2, 3], listing)
    with pytest.raises(CheckpointError, match="holds a list, not a state dict"):
        read_checkpoint(listing)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "absent.pth")
