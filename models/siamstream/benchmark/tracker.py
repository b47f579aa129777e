"""`siamstream bench tracker`: where the time of one tracking step goes, and what batching buys.

Everything is measured in one run on one machine, so the figures compare side by side: per-stage medians
of a step (crop, search forward, post-processing), the template stage, batched search calls of N
different templates against N single calls, bf16 against fp32, and the scripted search stage against the
eager network it was scripted from.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from siamstream.benchmark.timing import median_ms, milliseconds_since
from siamstream.config import Precision, TrackerConfig
from siamstream.data.synthetic import SequenceSpec, generate_sequence
from siamstream.nn.network import SiameseNetwork, build_network
from siamstream.package import TrackerPackage, export_package, read_package
from siamstream.runner import TorchScriptRunner
from siamstream.tracking.state import TrackResult
from siamstream.tracking.step import finish_search, init_track, prepare_search


@dataclass(frozen=True)
class StepTimes:
    """Median milliseconds of each stage of a tracking step over a sequence."""

    crop_ms: float
    search_ms: float
    post_ms: float
    step_ms: float
    results: list[TrackResult]


def random_network(config: TrackerConfig, seed: int = 0) -> SiameseNetwork:
    """The tracker's network with seeded random weights and plausible BatchNorm statistics."""
    torch.manual_seed(seed)
    network = build_network(config).eval()
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return network


def time_steps(config: TrackerConfig, runner: TorchScriptRunner, frames: list[np.ndarray], box) -> StepTimes:
    """Track `frames` (frame 0 initialises at `box`) and time each stage of every later frame."""
    state, request = init_track(config, frames[0], box)
    embedding = runner.template(request.crop, request.box_prior)
    crop, search, post, step, results = [], [], [], [], []
    for frame in frames[1:]:
        start = time.perf_counter()
        search_request = prepare_search(config, state, frame)
        cropped = time.perf_counter()
        rows = search_request.crops.shape[0]
        outputs = runner.search(np.repeat(embedding, rows, axis=0), search_request.crops)
        searched = time.perf_counter()
        state, result = finish_search(config, state, search_request, outputs)
        crop.append((cropped - start) * 1000)
        search.append((searched - cropped) * 1000)
        post.append(milliseconds_since(searched))
        step.append(milliseconds_since(start))
        results.append(result)
    median = statistics.median
    return StepTimes(median(crop), median(search), median(post), median(step), results)


def batch_speedups(
    config: TrackerConfig, runner: TorchScriptRunner, frames: list[np.ndarray], box, sizes: tuple[int, ...]
) -> list[dict]:
    """Throughput of one search call over N different templates relative to N single calls."""
    state, _ = init_track(config, frames[0], box)
    crop_x = prepare_search(config, state, frames[1]).crops[:1]
    rows = []
    for size in sizes:
        # N different templates: the target box shifted a little for each stream.
        templates = [
            init_track(config, frames[0], (box[0] + 2 * i, box[1] + i, box[2], box[3]))[1]
            for i in range(size)
        ]
        embeddings = np.concatenate([runner.template(t.crop, t.box_prior) for t in templates])
        crops = np.repeat(crop_x, size, axis=0)
        repeats = 3 if size < 16 else 2
        batched = median_ms(lambda e=embeddings, c=crops: runner.search(e, c), repeats)
        single = median_ms(
            lambda e=embeddings, c=crops: [runner.search(e[i : i + 1], c[i : i + 1]) for i in range(len(e))],
            repeats,
        )
        rows.append(
            {"templates": size, "batched_ms": batched, "single_ms": single, "speedup": single / batched}
        )
    return rows


def eager_search_ms(network: SiameseNetwork, runner: TorchScriptRunner, frames, box, config) -> float:
    """Median search forward of the eager network on the same inputs as the scripted stage."""
    state, request = init_track(config, frames[0], box)
    crops = torch.from_numpy(prepare_search(config, state, frames[1]).crops).float()
    with torch.inference_mode():
        embedding = network.template_embedding(
            torch.from_numpy(request.crop).float(), torch.from_numpy(request.box_prior)
        )
        embedding = embedding.repeat(crops.shape[0], 1)
        return median_ms(lambda: network.search_outputs(embedding, crops), repeats=5)


def max_box_difference(a: list[TrackResult], b: list[TrackResult]) -> float:
    return float(max(np.abs(np.subtract(x.bbox, y.bbox)).max() for x, y in zip(a, b, strict=True)))


def run(
    config: TrackerConfig,
    frame_count: int,
    package_dir: Path | None,
    bf16_frames: int = 0,
    batch_sizes: tuple[int, ...] = (1, 4, 16),
) -> dict:
    """All figures of the tracker benchmark as one JSON-ready dict (times in ms).

    `bf16_frames` > 0 also tracks that many frames with a bf16 package of the same weights. Without
    native bf16 (AVX512-BF16/AMX; see `cpu_capability`) PyTorch emulates it 10-100x slower than fp32,
    so it is opt-in.
    """
    sequence = generate_sequence(SequenceSpec(name="bench", length=frame_count + 1, seed=0))
    frames = [sequence.frame(i) for i in range(len(sequence))]
    box = tuple(float(v) for v in sequence.init_box)
    with tempfile.TemporaryDirectory(prefix="siamstream-bench-") as scratch:
        network = random_network(config)
        packages: dict[Precision, TrackerPackage] = {}
        if package_dir is not None:
            packages[Precision.FP32] = read_package(package_dir)
        else:
            packages[Precision.FP32] = export_package(network, config, Path(scratch) / "fp32")
        runner = TorchScriptRunner(packages[Precision.FP32])
        _, request = init_track(config, frames[0], box)
        template_ms = median_ms(lambda: runner.template(request.crop, request.box_prior), repeats=5)
        steps = time_steps(config, runner, frames, box)
        report = {
            "tracker": config.name,
            "frames": frame_count,
            "threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "template_ms": template_ms,
            "crop_ms": steps.crop_ms,
            "search_ms": steps.search_ms,
            "post_ms": steps.post_ms,
            "step_ms": steps.step_ms,
            "overhead_pct": 100.0 * (steps.step_ms - steps.search_ms) / steps.step_ms,
            "batch": batch_speedups(config, runner, frames, box, batch_sizes),
        }
        if package_dir is None:
            report["eager_search_ms"] = eager_search_ms(network, runner, frames, box, config)
        if bf16_frames > 0:
            if package_dir is not None:
                raise ValueError("bf16 comparison needs the benchmark's own package (no --package)")
            packages[Precision.BF16] = export_package(network, config, Path(scratch) / "bf16", Precision.BF16)
            fp32 = time_steps(config, runner, frames[: bf16_frames + 1], box)
            bf16 = time_steps(
                config, TorchScriptRunner(packages[Precision.BF16]), frames[: bf16_frames + 1], box
            )
            report["bf16"] = {
                "frames": bf16_frames,
                "search_ms": bf16.search_ms,
                "speedup": fp32.search_ms / bf16.search_ms,
                "max_box_diff_px": max_box_difference(fp32.results, bf16.results),
            }
    return report


def print_report(report: dict) -> None:
    print(
        f"tracker {report['tracker']}: {report['frames']} frames, {report['threads']} torch threads, "
        f"CPU capability {report['cpu_capability']}"
    )
    for key in ("template_ms", "crop_ms", "search_ms", "post_ms", "step_ms"):
        print(f"  {key:14s} {report[key]:9.2f}")
    print(f"  overhead       {report['overhead_pct']:8.2f} % of the step")
    if "eager_search_ms" in report:
        ratio = report["eager_search_ms"] / report["search_ms"]
        print(f"  eager search   {report['eager_search_ms']:9.2f}  (scripted is {ratio:.2f}x)")
    for row in report["batch"]:
        print(
            f"  batch {row['templates']:2d}: one call {row['batched_ms']:9.2f} ms, "
            f"{row['templates']} single calls {row['single_ms']:9.2f} ms -> {row['speedup']:.2f}x"
        )
    if "bf16" in report:
        bf16 = report["bf16"]
        print(
            f"  bf16 search    {bf16['search_ms']:9.2f}  ({bf16['speedup']:.2f}x fp32 "
            f"over {bf16['frames']} frames), "
            f"max box difference {bf16['max_box_diff_px']:.3f} px"
        )
