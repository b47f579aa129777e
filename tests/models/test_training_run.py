"""The training loop end to end on tiny synthetic data: the loss goes down, checkpoints export to a
package the offline tracker runs, resume continues exactly, and the margin objective trains an RPN."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np
import pytest
import torch

from siamstream.data import SequenceSpec, generate_sequence
from siamstream.nn.network import build_network
from siamstream.package import read_package
from siamstream.registry import get_config, list_trackers
from siamstream.runner import PackageRunner
from siamstream.tracking.offline import OfflineTracker
from siamstream.training import (
    TrainingConfig,
    build_objective,
    default_training_config,
    open_training_data,
    train,
)
from siamstream.training.config import Augmentation, BackboneTraining, LRSchedule, PairSettings
from siamstream.training.schedule import epoch_lr

SIAMFC = get_config("siamfc_alexnet")


def tiny_config(**update: object) -> TrainingConfig:
    """SiamFC at a 159 search crop (5x5 response), 4 pairs a step, mild augmentation, no workers."""
    settings = {
        "epochs": 2,
        "batch_size": 4,
        "pairs_per_epoch": 8,
        "search_size": 159,
        "num_workers": 0,
        "lr": LRSchedule(warmup_epochs=0, base_lr=0.01, end_lr=0.005),
        "pairs": PairSettings(
            negative_probability=0.0,
            search=Augmentation(shift=8, scale=0.05, color=0.0),
            template=Augmentation(shift=2, scale=0.02, color=0.0),
        ),
    }
    settings.update(update)
    return default_training_config(SIAMFC).model_copy(update=settings)


@pytest.fixture(scope="module")
def sequences() -> list:
    return open_training_data("synthetic:3")


def test_lr_schedule_warms_up_then_decays() -> None:
    schedule = LRSchedule(warmup_epochs=2, warmup_start_lr=0.001, base_lr=0.004, end_lr=0.0004)
    lrs = [epoch_lr(schedule, epoch, 6) for epoch in range(6)]
    np.testing.assert_allclose(
        lrs, [0.001, 0.002, 0.004, 0.004 * 0.1 ** (1 / 3), 0.004 * 0.1 ** (2 / 3), 0.0004]
    )
    step = LRSchedule(warmup_epochs=0, base_lr=0.01, decay="step", step_epochs=2, gamma=0.5)
    assert [epoch_lr(step, epoch, 5) for epoch in range(5)] == [0.01, 0.01, 0.005, 0.005, 0.0025]
    milestones = LRSchedule(warmup_epochs=1, base_lr=0.01, decay="milestones", milestones=(2, 3), gamma=0.5)
    assert [epoch_lr(milestones, epoch, 5) for epoch in range(5)] == [0.001, 0.01, 0.01, 0.005, 0.0025]


@pytest.mark.parametrize("milestones", [(), (0, 2), (3, 2), (2, 2)])
def test_milestone_decay_needs_positive_increasing_milestones(milestones: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="milestone"):
        LRSchedule(decay="milestones", milestones=milestones)


def test_a_few_steps_reduce_the_loss(sequences: list, tmp_path: Path) -> None:
    run = train(SIAMFC, tiny_config(epochs=3, pairs_per_epoch=16), sequences, tmp_path, progress=False)
    totals = [row["total"] for row in run.step_losses]
    assert len(totals) == 12
    assert np.mean(totals[-4:]) < np.mean(totals[:4]) - 0.01, totals
    with (tmp_path / "metrics.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert list(rows[0]) == ["epoch", "step", "lr", "cls", "total", "pairs_per_s"]
    assert [int(row["step"]) for row in rows] == list(range(1, 13)) and float(rows[0]["pairs_per_s"]) > 0
    assert (tmp_path / "loss_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_continues_exactly_where_the_run_stopped(sequences: list, tmp_path: Path) -> None:
    straight = train(SIAMFC, tiny_config(), sequences, tmp_path / "straight", progress=False)
    first = train(SIAMFC, tiny_config(epochs=1), sequences, tmp_path / "split", progress=False)
    saved = torch.load(first.checkpoints[0], weights_only=True)
    assert saved["epoch"] == 1 and saved["training"]["epochs"] == 1 and saved["optimizer"]["state"]
    resumed = train(
        SIAMFC, tiny_config(), sequences, tmp_path / "split", resume=first.checkpoints[0], progress=False
    )
    assert [row["step"] for row in resumed.step_losses] == [3, 4]

    def losses(rows: list[dict[str, float]]) -> list[dict[str, float]]:
        return [{key: value for key, value in row.items() if key != "pairs_per_s"} for row in rows]

    assert losses(resumed.step_losses) == losses(straight.step_losses[2:])
    a = torch.load(straight.checkpoints[-1], weights_only=True)
    b = torch.load(resumed.checkpoints[-1], weights_only=True)
    assert all(torch.equal(a["state_dict"][key], b["state_dict"][key]) for key in a["state_dict"])
    momentum_a = [state["momentum_buffer"] for state in a["optimizer"]["state"].values()]
    momentum_b = [state["momentum_buffer"] for state in b["optimizer"]["state"].values()]
    assert all(torch.equal(x, y) for x, y in zip(momentum_a, momentum_b, strict=True))


def test_cli_train_export_and_track_round_trip(tmp_path: Path) -> None:
    config = tmp_path / "training.json"
    config.write_text(tiny_config(epochs=1).model_dump_json())
    command = [sys.executable, "-m", "siamstream.cli"]
    data = ["--data", "synthetic:2", "--config", str(config), "--out", str(tmp_path / "run")]
    trained = subprocess.run(
        [*command, "train", "--tracker", "siamfc_alexnet", *data, "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert trained.returncode == 0, trained.stderr
    checkpoint = tmp_path / "run/checkpoint_e001.pth"
    exported = subprocess.run(
        [*command, "export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "package")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert exported.returncode == 0, exported.stderr
    package = read_package(tmp_path / "package")
    assert package.meta.tracker == "siamfc_alexnet" and package.config == SIAMFC
    network = build_network(SIAMFC)
    network.load_state_dict(torch.load(checkpoint, weights_only=True)["state_dict"])
    crop = np.random.default_rng(0).integers(0, 256, (1, 3, 127, 127), dtype=np.uint8)
    prior = np.array([[40.0, 30.0]], np.float32)
    runner = PackageRunner(package)
    with torch.no_grad():
        expected = network.template_embedding(torch.from_numpy(crop).float(), torch.from_numpy(prior)).numpy()
    np.testing.assert_allclose(runner.template(crop, prior), expected, rtol=1e-4, atol=1e-4)
    sequence = generate_sequence(SequenceSpec(name="walk", length=3, width=160, height=120, seed=5))
    tracker = OfflineTracker(package.config, runner)
    results = tracker.track_sequence(sequence.frames(), cast("Sequence[float]", sequence.init_box))
    assert len(results) == 3 and all(np.isfinite(result.bbox).all() for result in results)


def test_rpn_margin_objective_trains_the_alexnet_rpn(sequences: list, tmp_path: Path) -> None:
    tracker = get_config("siamrpn_alex")
    training = default_training_config(tracker).model_copy(
        update={
            "epochs": 1,
            "batch_size": 2,
            "pairs_per_epoch": 2,
            "search_size": 191,
            "num_workers": 0,
            "objective": "rpn_margin",
            "lr": LRSchedule(warmup_epochs=0),
        }
    )
    run = train(tracker, training, sequences, tmp_path, progress=False)
    (row,) = run.step_losses
    assert set(row) >= {"cls", "loc", "margin", "total"} and row["margin"] > 0
    expected = 1.0 * row["cls"] + 1.2 * row["loc"] + 1.0 * row["margin"]
    assert row["total"] == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="trains rpn heads"):
        build_objective(SIAMFC, training)


def test_siammargin_trains_with_the_margin_objective_by_default() -> None:
    from siamstream.registry import get_config
    from siamstream.training.config import default_training_config

    assert default_training_config(get_config("siammargin_r50")).objective == "rpn_margin"
    assert default_training_config(get_config("siamrpnpp_r50")).objective is None


# The small-backbone arms of the from-scratch study and the full-size trackers whose recipes they keep.
SMALL_SIBLINGS = {
    "siamrpnpp_small": "siamrpnpp_r50",
    "siamrpnpp_acm_small": "siamrpnpp_acm_r50",
    "siammargin_small": "siammargin_r50",
    "siamban_small": "siamban_r50",
    "siamban_acm_small": "siamban_acm_r50",
    "siamcan_small": "siamcan_r50",
    "siamcar_small": "siamcar_r50",
    "dcfnet_small": "dcfnet_r50",
}


def test_every_small_backbone_tracker_is_a_study_arm() -> None:
    small = [name for name in list_trackers() if get_config(name).backbone.kind.startswith("small_staged")]
    assert sorted(small) == sorted(SMALL_SIBLINGS)


@pytest.mark.parametrize("name", sorted(SMALL_SIBLINGS))
def test_small_tracker_trains_with_its_siblings_recipe_and_the_whole_backbone(
    name: str, sequences: list, tmp_path: Path
) -> None:
    tracker, sibling = get_config(name), get_config(SMALL_SIBLINGS[name])
    recipe, sibling_recipe = default_training_config(tracker), default_training_config(sibling)
    # The sibling's losses, labels, pairs, schedule and objective; only the backbone schedule differs.
    assert recipe.model_copy(update={"backbone": sibling_recipe.backbone}) == sibling_recipe
    assert recipe.backbone == BackboneTraining(unfreeze_epoch=0, layers=(), lr_multiplier=1.0)
    assert type(build_objective(tracker, recipe)) is type(build_objective(sibling, sibling_recipe))
    training = recipe.model_copy(
        update={"batch_size": 2, "pairs_per_epoch": 4, "epochs": 1, "search_size": 191, "num_workers": 0}
    )
    torch.manual_seed(0)
    initial = build_network(tracker).state_dict()
    torch.save(initial, tmp_path / "initial.pth")
    run = train(tracker, training, sequences, tmp_path, init=tmp_path / "initial.pth", progress=False)
    assert len(run.step_losses) == 2
    for row in run.step_losses:
        assert np.isfinite(list(row.values())).all() and row["total"] > 0, row
    trained = torch.load(run.checkpoints[-1], weights_only=True)["state_dict"]
    backbone = [key for key, _ in build_network(tracker).named_parameters() if key.startswith("backbone.")]
    assert [key for key in backbone if torch.equal(trained[key], initial[key])] == []
