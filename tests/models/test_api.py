"""The Python API (`from siamstream import Tracker`): the README example on the trained demo package, and
`MultiTracker` against one `Tracker` per target."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

import siamstream
from siamstream import FrameResult, MultiTracker, Tracker
from siamstream.benchmark.tracker import random_network
from siamstream.config import TrackerConfig
from siamstream.data import Challenge, SequenceSpec, generate_sequence
from siamstream.package import export_package, read_package
from siamstream.registry import get_config
from siamstream.runner import PackageRunner
from siamstream.tracking.state import TrackStatus
from tests.recording_runner import RecordingRunner

ROOT = Path(__file__).resolve().parents[2]
DEMO_PACKAGE = ROOT / "models" / "packages" / "demo"
# Each target's boxes tracked together equal its boxes tracked alone up to the float rounding of batched
# convolutions (measured: a few 1e-6 px).
SAME_BOX_PX = 1e-4
# The PASCAL VOC / OTB success criterion. A box shifted by half the target's side (an x/y versus centre
# mix-up) overlaps 1/3 and fails it; the demo package scores above 0.9 on the README's sequence.
MIN_OVERLAP = 0.5


def readme_example() -> str:
    """The first Python block of the README's "Python API" section."""
    section = (ROOT / "README.md").read_text().split("\n## Python API\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "no ```python block in the Python API section"
    return match[1]


def overlap(a: tuple[float, ...], b: np.ndarray) -> float:
    """Intersection over union of two xywh boxes."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(width, 0.0) * max(height, 0.0)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def track_alone_and_together(
    config: TrackerConfig, runner: RecordingRunner, frames: list[np.ndarray], boxes: list[np.ndarray]
) -> tuple[list[list[FrameResult]], list[list[FrameResult]], dict[str, list]]:
    """Per target, its results tracked alone and tracked with the others (both [target][frame]), and the
    calls the together run made."""
    alone = []
    # The boxes are ndarray rows: sequences of floats to the trackers.
    for box in boxes:
        tracker = Tracker(config, runner)
        alone.append(
            [
                tracker.init(frames[0], cast("Sequence[float]", box)),
                *(tracker.update(frame) for frame in frames[1:]),
            ]
        )
    runner.calls = {stage: [] for stage in runner.calls}
    multi = MultiTracker(config, runner)
    per_frame = [
        multi.init(frames[0], cast("list[Sequence[float]]", boxes)),
        *(multi.update(frame) for frame in frames[1:]),
    ]
    return alone, [list(target) for target in zip(*per_frame, strict=True)], runner.calls


def assert_same_results(alone: list[list[FrameResult]], together: list[list[FrameResult]]) -> None:
    for target_alone, target_together in zip(alone, together, strict=True):
        for one, other in zip(target_alone, target_together, strict=True):
            np.testing.assert_allclose(other.box, one.box, rtol=0, atol=SAME_BOX_PX)
            assert other.status is one.status
            assert other.frame_index == one.frame_index
            if one.score is None:
                assert other.score is None
            else:
                assert other.score == pytest.approx(one.score, abs=1e-5)


def test_readme_example_follows_the_synthetic_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the example names the demo package relative to the repository root
    code = readme_example()
    assert len(code.strip().splitlines()) <= 10
    printed: list[tuple] = []
    namespace: dict[str, Any] = {"print": lambda *values: printed.append(values)}
    exec(compile(code, "README.md", "exec"), namespace)
    video = namespace["video"]
    assert [line[0] for line in printed] == list(range(1, len(video)))
    for index, box, score, status in printed:
        assert overlap(box, video.ground_truth[index]) >= MIN_OVERLAP, index
        assert 0.0 <= score <= 1.0
        assert status is TrackStatus.TRACKING


def test_several_targets_share_one_search_call_and_get_their_own_boxes() -> None:
    # The target and two look-alikes of it in one video, with the trained SiamFC (three scale crops each).
    video = generate_sequence(
        SequenceSpec(length=4, seed=2, width=320, height=240, challenges=frozenset({Challenge.DISTRACTORS}))
    )
    boxes = [video.init_box, *(track[0] for track in video.distractor_boxes)]
    package = read_package(DEMO_PACKAGE)
    runner = RecordingRunner(PackageRunner(package))
    alone, together, calls = track_alone_and_together(package.config, runner, list(video.frames()), boxes)
    assert_same_results(alone, together)
    assert calls == {"template": [3], "search": [(9, 255)] * 3, "update": []}
    # The three targets went their own ways: no result was copied from another target.
    last_boxes = {target[-1].box for target in together}
    assert len(last_boxes) == 3


def test_several_targets_with_second_search_grown_region_and_template_update(tmp_path: Path) -> None:
    # Thresholds at their extremes so that every frame of every target searches twice, grows its search
    # region and updates its template (seeded random weights score about 0.54).
    base = get_config("siammargin_small")
    config = TrackerConfig.model_validate(
        {
            **base.model_dump(),
            "search": {
                **base.search.model_dump(),
                "one_more_search": True,
                "second_search_below": 1.0,
                "adaptive_region": True,
                "grow_below": 1.0,
                "normal_at": 1.0,
            },
            "template_update": {"enabled": True, "rate": 0.3, "gate": 0.0},
        }
    )
    package = export_package(random_network(config), config, tmp_path / "siammargin")
    runner = RecordingRunner(PackageRunner(package))
    video = generate_sequence(
        SequenceSpec(length=4, seed=2, width=320, height=240, challenges=frozenset({Challenge.DISTRACTORS}))
    )
    boxes = [video.init_box, *(track[0] for track in video.distractor_boxes)]
    alone, together, calls = track_alone_and_together(config, runner, list(video.frames()), boxes)
    assert_same_results(alone, together)
    # Frame by frame the region grows one step of 64 px; the second search crops the first one's side.
    searches = [(3, 255), (3, 255), (3, 319), (3, 319), (3, 383), (3, 383)]
    assert calls == {"template": [3], "search": searches, "update": [3] * 3}


def test_from_package_takes_a_str_or_a_path() -> None:
    assert read_package(str(DEMO_PACKAGE)).root == DEMO_PACKAGE
    assert Tracker.from_package(str(DEMO_PACKAGE)).config.name == "siamfc_alexnet"
    assert MultiTracker.from_package(DEMO_PACKAGE, device="cpu").config.name == "siamfc_alexnet"


def test_update_before_init_is_refused() -> None:
    with pytest.raises(RuntimeError, match="before init"):
        MultiTracker.from_package(DEMO_PACKAGE).update(np.zeros((240, 320, 3), dtype=np.uint8))


def test_import_siamstream_is_cheap_and_knows_its_version() -> None:
    code = (
        "import json, sys, siamstream\n"
        "version = siamstream.__version__\n"
        "print(json.dumps([version, sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'cv2', 'numpy', 'pydantic', 'siamstream'))]))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    version, loaded = json.loads(completed.stdout)
    assert version == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert loaded == ["siamstream"]


def test_version_of_a_tree_that_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert siamstream.__version__ == "0+unknown"
    with pytest.raises(AttributeError, match="no attribute 'Trackers'"):
        _ = siamstream.Trackers
