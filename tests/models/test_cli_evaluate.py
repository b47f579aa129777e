"""`siamstream eval` end to end: saved results in both toolkits' layouts, a sequence filter, GOT-10k's test
split and submission, and the reset protocol."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from siamstream.data import SequenceSpec, generate_sequence, write_got10k
from siamstream.package import TrackerPackage
from tests.models.cli_fixtures import TRACKER, siamstream


@pytest.fixture(scope="module")
def got10k_val(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GOT-10k root with three synthetic val sequences of known ground truth."""
    root = tmp_path_factory.mktemp("got10k")
    for index in range(3):
        spec = SequenceSpec(name=f"GOT-10k_Val_00000{index + 1}", width=160, height=120, length=6, seed=index)
        write_got10k(generate_sequence(spec), root / "val")
    return root


def test_saved_results_of_two_layouts_are_scored_on_the_chosen_sequences(got10k_val: Path, tmp_path: Path):
    names = [f"GOT-10k_Val_00000{index}" for index in (1, 2, 3)]
    truth = {name: np.loadtxt(got10k_val / "val" / name / "groundtruth.txt", delimiter=",") for name in names}
    oracle = tmp_path / "results" / "Oracle"  # GOT-10k toolkit layout
    shifted = tmp_path / "results" / "Shifted"  # pysot layout, every box 30 px right of the truth
    shifted.mkdir(parents=True)
    for name in names:
        (oracle / name).mkdir(parents=True)
        np.savetxt(oracle / name / f"{name}_001.txt", truth[name], fmt="%.3f", delimiter=",")
        np.savetxt(shifted / f"{name}.txt", truth[name] + [30, 0, 0, 0], fmt="%.3f", delimiter=",")
    out = tmp_path / "out"
    completed = siamstream(
        "eval", "--results", str(oracle), "--results", str(shifted), "--dataset", str(got10k_val),
        "--sequences", "GOT-10k_Val_000001,*3", "--out", str(out),
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    best = json.loads((out / "Oracle.json").read_text())
    assert [row["name"] for row in best["sequences"]] == [names[0], names[2]]
    assert best["overall"]["ao"] == pytest.approx(1.0) and best["overall"]["sr75"] == 1.0
    assert best["overall"]["success_auc"] == pytest.approx(20 / 21)
    lost = json.loads((out / "Shifted.json").read_text())
    assert lost["overall"]["precision"] == 0.0  # 30 px off on every frame
    assert (out / "success.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_results_cannot_be_scored_under_the_reset_protocol(got10k_val: Path, tmp_path: Path):
    completed = siamstream(
        "eval", "--results", str(tmp_path), "--dataset", str(got10k_val), "--protocol", "reset",
        "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert (
        completed.returncode == 2
        and "--protocol reset" in completed.stderr
        and "needs --package" in completed.stderr
    )


def test_got10k_test_split_is_tracked_unscored_and_zipped_for_submission(
    package: TrackerPackage, tmp_path: Path
):
    root = tmp_path / "GOT-10k"
    spec = SequenceSpec(name="GOT-10k_Test_000001", width=160, height=120, length=5, seed=7)
    folder = write_got10k(generate_sequence(spec), root / "test")
    (folder / "groundtruth.txt").write_text((folder / "groundtruth.txt").read_text().splitlines()[0] + "\n")
    out = tmp_path / "out"
    completed = siamstream(
        "eval", "--package", str(package.root), "--dataset", str(root), "--split", "test", "--out", str(out)
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads((out / f"{TRACKER}.json").read_text())
    assert report["unscored"] == ["GOT-10k_Test_000001"] and report["sequences"] == []
    boxes = np.loadtxt(out / "results" / TRACKER / spec.name / f"{spec.name}_001.txt", delimiter=",")
    assert boxes.shape == (5, 4)
    with zipfile.ZipFile(out / "results" / f"{TRACKER}.zip") as archive:
        names = {name.rstrip("/") for name in archive.namelist()}
    assert {f"{spec.name}/{spec.name}_001.txt", f"{spec.name}/{spec.name}_time.txt"} <= names


def test_reset_protocol_reports_failures_accuracy_and_eao(package: TrackerPackage, tmp_path: Path):
    completed = siamstream(
        "eval", "--package", str(package.root), "--synthetic", "1", "--length", "20", "--protocol", "reset",
        "--eao-range", "1:10", "--out", str(tmp_path),
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    report = json.loads((tmp_path / f"{TRACKER}.reset.json").read_text())
    assert report["overall"]["eao_range"] == [1, 10] and report["overall"]["sequences"] == 1
    (row,) = report["sequences"]
    assert row["frames"] == 20 and row["failures"] == report["overall"]["failures"]
    assert "EAO over segment lengths 1..10" in completed.stdout
