"""Ahead-of-time compiled stages (AOTInductor): written by `import-checkpoint --compile-buckets`, run by
the package runner where they fit the machine, with the TorchScript stages' boxes; TorchScript where not."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from siamstream.compiled import (
    COMPILED_DIR,
    COMPILED_META,
    CompiledMeta,
    bucket_plan,
    check_buckets,
    compiled_misfit,
    run_costs,
    search_file,
)
from siamstream.config import Precision
from siamstream.data.synthetic import SequenceSpec, generate_sequence
from siamstream.machine import cpu_flags, read_cpuinfo
from siamstream.package import TrackerPackage, export_package, read_package
from siamstream.registry import get_config
from siamstream.runner import PackageRunner
from siamstream.tracking.offline import OfflineTracker
from tests.models.package_round_trip import trained_like_network

SIAMSTREAM = [sys.executable, "-m", "siamstream.cli"]
TRACKER = "siamfc_alexnet"  # three scales: 3 search rows a frame, past the one bucket of 2 rows
BUCKETS = "2"


@pytest.fixture(scope="module")
def compiled_package(tmp_path_factory: pytest.TempPathFactory) -> TrackerPackage:
    scratch = tmp_path_factory.mktemp("compiled")
    network = trained_like_network(get_config(TRACKER), seed=5)
    weights = scratch / "checkpoint_e1.pth"
    torch.save({"epoch": 1, "state_dict": network.state_dict(), "optimizer": {}}, weights)
    command = [*SIAMSTREAM, "import-checkpoint", "--tracker", TRACKER, "--weights", str(weights)]
    completed = subprocess.run(
        [*command, "--out", str(scratch / "package"), "--compile-buckets", BUCKETS],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr
    assert "compiled for batches of 2" in completed.stdout
    return read_package(scratch / "package")


def generated_wrapper(stage_file: Path) -> str:
    """The C++ that AOTInductor generated for a compiled stage (kept in its package)."""
    with zipfile.ZipFile(stage_file) as archive:
        (name,) = [name for name in archive.namelist() if name.endswith(".wrapper.cpp")]
        return archive.read(name).decode()


def track(package: TrackerPackage, runner: PackageRunner) -> np.ndarray:
    sequence = generate_sequence(SequenceSpec(width=320, height=240, length=8, seed=11))
    init_box = [float(v) for v in sequence.init_box]
    results = OfflineTracker(package.config, runner).track_sequence(list(sequence.frames()), init_box)
    return np.array([result.bbox for result in results])


@pytest.mark.slow
def test_compiled_convolutions_run_on_weights_packed_once(compiled_package: TrackerPackage) -> None:
    # Frozen, each of SiamFC's five backbone convolutions is oneDNN's fused convolution on a weight
    # packed at compile time; unfrozen (inductor compiling with autograd on), all six convolutions
    # (the head's cross-correlation too) would call ATen's and reorder their weights at every call.
    wrapper = generated_wrapper(compiled_package.root / COMPILED_DIR / search_file(2, 255))
    assert wrapper.count("mkldnn__convolution_pointwise(") == 5
    assert wrapper.count("cpu_convolution(") == 1  # the cross-correlation: its kernel is the template


@pytest.mark.slow  # compiles two stages (about a minute)
def test_compiled_stages_track_with_the_torchscript_boxes(compiled_package: TrackerPackage) -> None:
    meta = CompiledMeta.model_validate_json(
        (compiled_package.root / COMPILED_DIR / COMPILED_META).read_text()
    )
    assert (meta.buckets, meta.search_sides, meta.precision) == ((2,), (255,), Precision.FP32)
    assert meta.torch_version == torch.__version__
    assert set(meta.cpu_flags) == cpu_flags(read_cpuinfo())  # inductor compiles for the builder's CPU

    compiled = PackageRunner(compiled_package)
    scripted = PackageRunner(compiled_package, compiled=False)
    assert compiled.stage_form == "AOTInductor (buckets 2)"
    assert scripted.stage_form.startswith("TorchScript")

    compiled_boxes, scripted_boxes = track(compiled_package, compiled), track(compiled_package, scripted)
    assert np.abs(compiled_boxes - scripted_boxes).max() <= 0.01
    assert np.abs(scripted_boxes[-1] - scripted_boxes[0]).max() > 1.0  # the target moved: not a no-op


@pytest.mark.slow  # compiles two stages (about a minute)
def test_calls_below_and_above_the_bucket_are_padded_and_chunked(compiled_package: TrackerPackage) -> None:
    compiled = PackageRunner(compiled_package)
    scripted = PackageRunner(compiled_package, compiled=False)
    rng = np.random.default_rng(4)
    for rows in (1, 2, 5):
        crop_z = rng.integers(0, 256, (rows, 3, 127, 127), dtype=np.uint8)
        box_prior = rng.uniform(20, 80, (rows, 2)).astype(np.float32)
        crop_x = rng.integers(0, 256, (rows, 3, 255, 255), dtype=np.uint8)
        embedding = scripted.template(crop_z, box_prior)
        np.testing.assert_allclose(compiled.template(crop_z, box_prior), embedding, rtol=1e-4, atol=1e-4)
        (compiled_map,), (scripted_map,) = (
            compiled.search(embedding, crop_x),
            scripted.search(embedding, crop_x),
        )
        assert compiled_map.shape == scripted_map.shape == (rows, 1, 17, 17)
        scale = np.abs(scripted_map).max()
        np.testing.assert_allclose(compiled_map, scripted_map, rtol=0, atol=1e-4 * scale)


@pytest.mark.slow  # compiles two stages (about a minute)
def test_compiled_stages_that_do_not_fit_or_cannot_be_read_leave_the_torchscript_stages_running(
    compiled_package: TrackerPackage, tmp_path: Path
) -> None:
    meta = json.loads((compiled_package.root / COMPILED_DIR / COMPILED_META).read_text())
    cases = {
        "torch": ({**meta, "torch_version": "0.0.1"}, "built with torch 0.0.1"),
        "cpu": (
            {**meta, "cpu_flags": [*meta["cpu_flags"], "not_a_flag_of_this_cpu"]},
            "built on a CPU with not_a_flag_of_this_cpu, which this CPU lacks",
        ),
        "format": ({**meta, "format": 2, "new_field": 1}, "format 2, this version reads 1"),
        "json": ("{", "is not readable"),
        "reexported": (meta, "compiled beside other TorchScript stages (the package was exported again)"),
    }
    for case, (recorded, reason) in cases.items():
        copy = shutil.copytree(compiled_package.root, tmp_path / case)
        text = recorded if isinstance(recorded, str) else json.dumps(recorded)
        (copy / COMPILED_DIR / COMPILED_META).write_text(text)
        if case == "reexported":  # other weights exported over the package, without compiling
            export_package(trained_like_network(get_config(TRACKER), seed=6), get_config(TRACKER), copy)
        runner = PackageRunner(read_package(copy))
        assert (
            runner.stage_form.startswith("TorchScript (compiled stages skipped")
            and reason in runner.stage_form
        )
        scripted = PackageRunner(read_package(copy), compiled=False)
        package = read_package(copy)
        assert np.array_equal(track(package, runner), track(package, scripted))


def test_bucket_plan_takes_the_cheapest_runs() -> None:
    timed = ((1, 4.8), (4, 15.6), (16, 50.0))  # ms per run, as a builder measured them
    assert bucket_plan(1, timed) == ((0, 1, 1),)
    assert bucket_plan(5, timed) == ((0, 4, 4), (4, 5, 1))  # 20.4 ms, not 50 padded
    assert bucket_plan(9, timed) == ((0, 4, 4), (4, 8, 4), (8, 9, 1))  # 36 ms
    assert bucket_plan(13, timed) == ((0, 13, 16),)  # 50 ms padded, not 4+4+4+1 (51.6)
    assert bucket_plan(21, timed) == ((0, 16, 16), (16, 20, 4), (20, 21, 1))
    by_rows = ((1, 1.0), (4, 4.0), (16, 16.0))  # no recorded times: every row costs the same
    assert bucket_plan(3, by_rows) == ((0, 1, 1), (1, 2, 1), (2, 3, 1))  # 3 rows, not 4
    assert bucket_plan(16, by_rows) == ((0, 16, 16),)  # as cheap as 4+4+4+4, in one run
    assert bucket_plan(5, ((4, 4.0), (16, 16.0))) == ((0, 4, 4), (4, 5, 4))  # one padded row
    assert bucket_plan(5, ((2, 2.0),)) == ((0, 2, 2), (2, 4, 2), (4, 5, 2))
    assert bucket_plan(0, ((2, 2.0),)) == ()


def test_runs_are_weighed_by_the_recorded_times_or_else_by_rows(compiled_package: TrackerPackage) -> None:
    recorded = compiled_package.root / COMPILED_DIR / COMPILED_META
    meta = CompiledMeta.model_validate_json(recorded.read_text())
    files = {2: search_file(2, 255)}
    assert set(meta.call_ms) == {"template-b2.pt2", search_file(2, 255)}
    assert all(ms > 0 for ms in meta.call_ms.values())
    assert run_costs(meta, files) == ((2, meta.call_ms[search_file(2, 255)]),)
    assert run_costs(meta.model_copy(update={"call_ms": {}}), files) == ((2, 2.0),)


def test_buckets_must_be_distinct_positive_row_counts() -> None:
    assert check_buckets([16, 1, 4]) == (1, 4, 16)
    for bad in ([], [0, 4], [4, 4], [-1]):
        with pytest.raises(ValueError, match="distinct positive"):
            check_buckets(bad)
    arguments = ["--tracker", TRACKER, "--weights", __file__, "--out", "x", "--compile-buckets", "4,4"]
    completed = subprocess.run(
        [*SIAMSTREAM, "import-checkpoint", *arguments], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 2 and "--compile-buckets: '4,4'" in completed.stderr


def test_misfit_names_the_device_the_torch_the_missing_flags_and_other_stages() -> None:
    meta = CompiledMeta(
        torch_version="2.13.0+cpu",
        cpu_capability="AVX512",
        cpu_flags=("avx2", "avx512_bf16", "avx512f", "amx_tile"),
        precision=Precision.BF16,
        buckets=(1,),
        search_sides=(255,),
        stages_sha256="ab12",
    )
    here = {"avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"}

    def misfit(
        torch_version: str = "2.13.0+cpu", flags: set[str] = here, device: str = "cpu", stages: str = "ab12"
    ) -> str | None:
        return compiled_misfit(
            meta, torch_version=torch_version, flags=flags, device=torch.device(device), stages=stages
        )

    assert misfit() is None
    assert misfit(flags={"avx2", "avx512f"}) == (
        "they were built on a CPU with amx_tile, avx512_bf16, which this CPU lacks"
    )
    assert misfit(torch_version="2.14.1") == "they were built with torch 2.13.0+cpu, this is torch 2.14.1"
    assert misfit(device="cuda") == "they are compiled for the CPU, not cuda"
    assert misfit(stages="cd34") == (
        "they were compiled beside other TorchScript stages (the package was exported again)"
    )
    with pytest.raises(ValueError, match="distinct positive"):
        CompiledMeta.model_validate({**meta.model_dump(), "buckets": (4, 4)})
