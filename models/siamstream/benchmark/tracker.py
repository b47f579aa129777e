"""`siamstream bench tracker`: where the time of one tracking step goes, and what batching buys.

Everything is measured in one run on one machine, so the figures compare side by side: per-stage medians
and quartiles of a step (crop, search forward, post-processing) over a sequence, the template stage, and
three comparisons through `harness.compare` (every arm warmed, arms alternating call by call): one search
call over N different templates against N single calls, the package's search stage (TorchScript, or
compiled ahead of time with `--compile-buckets`) against the eager stage it was exported from, and the
bf16 package against the fp32 one, all on the same crops.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from siamstream.benchmark.harness import (
    MIN_WARMUP,
    Comparison,
    Summary,
    compare,
    comparison_lines,
    summarize,
    summary_row,
    table_header,
)
from siamstream.benchmark.machine import describe_machine, machine_line
from siamstream.benchmark.timing import milliseconds_since
from siamstream.checkpoint import load_weights, read_checkpoint, recorded_config
from siamstream.compiled import export_with_compiled_stages
from siamstream.config import Precision, TrackerConfig
from siamstream.data.synthetic import SequenceSpec, generate_sequence
from siamstream.nn.network import SiameseNetwork, build_network
from siamstream.nn.stages import SearchStage
from siamstream.package import read_package
from siamstream.registry import get_config
from siamstream.runner import PackageRunner
from siamstream.tracking.state import TrackResult
from siamstream.tracking.step import finish_search, init_track, prepare_search

SearchCall = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, ...]]


@dataclass(frozen=True)
class StepTimes:
    """Each stage of the timed tracking steps, and the result of every tracked frame (warm-up included)."""

    crop: Summary
    search: Summary
    post: Summary
    step: Summary
    results: list[TrackResult]


@dataclass(frozen=True)
class SearchInputs:
    """One search call's inputs: embedding rows float32 [K, D] and search crops uint8 [K, 3, X, X]."""

    embedding: np.ndarray
    crops: np.ndarray


def random_network(config: TrackerConfig, seed: int = 0) -> SiameseNetwork:
    """The tracker's network with seeded random weights and plausible BatchNorm statistics."""
    torch.manual_seed(seed)
    network = build_network(config).eval()
    with torch.no_grad():
        for module in network.modules():
            # The networks' BatchNorms keep running statistics (track_running_stats), so neither is None.
            if (
                isinstance(module, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d)
                and module.running_mean is not None
                and module.running_var is not None
            ):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return network


def benchmark_network(
    tracker: str | None, checkpoint: Path | None, seed: int = 0
) -> tuple[TrackerConfig, SiameseNetwork, str]:
    """The network a benchmark measures and words saying whose weights it has: `tracker`'s with seeded
    random weights (`random_network`), or the trained one of a SiamStream training `checkpoint`, whose
    recorded config wins (CheckpointError for a file that records none)."""
    if checkpoint is None:
        if tracker is None:
            raise ValueError("name a tracker or a checkpoint")
        config = get_config(tracker)
        return config, random_network(config, seed), f"seeded random weights (seed {seed})"
    read = read_checkpoint(checkpoint)
    config = recorded_config(read, checkpoint)
    network = build_network(config).eval()
    load_weights(network, read.state_dict, config.name)
    return config, network, f"trained weights of {checkpoint}"


def time_steps(
    config: TrackerConfig,
    runner: PackageRunner,
    frames: list[np.ndarray],
    box,
    warmup: int,
) -> StepTimes:
    """Track `frames` (frame 0 initialises at `box`, xywh image px) and time each stage of every frame
    after the first `warmup` tracked ones (untimed: TorchScript optimises on its first calls)."""
    state, request = init_track(config, frames[0], box)
    embedding = runner.template(request.crop, request.box_prior)
    samples: dict[str, list[float]] = {"crop": [], "search": [], "post": [], "step": []}
    results = []
    for index, frame in enumerate(frames[1:]):
        start = time.perf_counter()
        search_request = prepare_search(config, state, frame)
        cropped = time.perf_counter()
        rows = search_request.crops.shape[0]
        outputs = runner.search(np.repeat(embedding, rows, axis=0), search_request.crops)
        searched = time.perf_counter()
        state, result = finish_search(config, state, search_request, outputs)
        if index >= warmup:
            samples["crop"].append((cropped - start) * 1000)
            samples["search"].append((searched - cropped) * 1000)
            samples["post"].append(milliseconds_since(searched))
            samples["step"].append(milliseconds_since(start))
        results.append(result)
    return StepTimes(**{stage: summarize(times) for stage, times in samples.items()}, results=results)


def search_inputs(
    config: TrackerConfig, runner: PackageRunner, frames: list[np.ndarray], box
) -> SearchInputs:
    """The inputs of the search call of frame 1 of a track started on frame 0 at `box`."""
    state, request = init_track(config, frames[0], box)
    crops = prepare_search(config, state, frames[1]).crops
    embedding = runner.template(request.crop, request.box_prior)
    return SearchInputs(np.repeat(embedding, crops.shape[0], axis=0), crops)


def _single_searches(
    runner: PackageRunner, embeddings: np.ndarray, crops: np.ndarray
) -> list[tuple[np.ndarray, ...]]:
    """One search call per template row and its crop."""
    return [runner.search(embeddings[i : i + 1], crops[i : i + 1]) for i in range(len(embeddings))]


def eager_search(stage: SearchStage) -> SearchCall:
    """`stage` called like `PackageRunner.search` (numpy in, numpy out, inference mode)."""

    def search(template_embedding: np.ndarray, crop_x: np.ndarray) -> tuple[np.ndarray, ...]:
        with torch.inference_mode():
            outputs = stage(torch.from_numpy(template_embedding), torch.from_numpy(crop_x))
        return tuple(output.numpy() for output in outputs)

    return search


def batch_comparisons(
    config: TrackerConfig,
    runner: PackageRunner,
    frames: list[np.ndarray],
    box,
    sizes: tuple[int, ...],
    repeats: int,
    warmup: int,
) -> list[dict]:
    """Per N in `sizes`: one search call over N different templates ("batched") against N single calls
    ("single"), alternated; `speedup` is the single calls' median over the batched call's."""
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
        comparison = compare(
            {
                "batched": partial(runner.search, embeddings, crops),
                "single": partial(_single_searches, runner, embeddings, crops),
            },
            repeats,
            warmup,
        )
        rows.append({"templates": size, "speedup": comparison.arms["single"].ratio, **comparison.to_dict()})
    return rows


def mkldnn_bf16_supported() -> bool:
    """Whether oneDNN runs bf16 on this CPU (PyTorch's own test: AVX512 BW/VL/DQ or AMX on x86)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def bf16_skip_reason(package_dir: Path | None) -> str | None:
    """Why the bf16 comparison cannot run here, or None."""
    if package_dir is not None:
        return "needs the benchmark's own package (no --package): it exports the same weights in bf16"
    if not mkldnn_bf16_supported():
        return (
            "torch.ops.mkldnn._is_mkldnn_bf16_supported() is False on this CPU: "
            "PyTorch would emulate bf16, 10-100x slower than fp32"
        )
    return None


def max_box_difference(a: list[TrackResult], b: list[TrackResult]) -> float:
    return float(max(np.abs(np.subtract(x.bbox, y.bbox)).max() for x, y in zip(a, b, strict=True)))


def run(
    config: TrackerConfig,
    frame_count: int,
    package_dir: Path | None,
    repeats: int = 10,
    warmup: int = MIN_WARMUP,
    batch_sizes: tuple[int, ...] = (1, 4, 16),
    bf16: bool = True,
    compile_buckets: tuple[int, ...] = (),
) -> dict:
    """All figures of the tracker benchmark as one JSON-ready dict (times in ms).

    The step timings track `warmup` untimed frames, then `frame_count` timed ones; each comparison
    calls its arms `warmup` times untimed, then `repeats` times timed, alternating. With `bf16` (and
    `bf16_skip_reason` None) it also compares a bf16 package of the same weights, and reports the largest
    box difference between the bf16 and fp32 tracks of the sequence. With `compile_buckets` the
    benchmark's own packages also get compiled stages for those batch sizes (`siamstream.compiled`), which
    the runner takes where they fit this machine: every figure is then of the compiled stages
    (`stage_form` says which ran). A `package_dir` runs as it is, compiled stages included.
    """
    sequence = generate_sequence(SequenceSpec(name="bench", length=warmup + frame_count + 1, seed=0))
    frames = [sequence.frame(i) for i in range(len(sequence))]
    box = tuple(float(v) for v in sequence.init_box)
    with tempfile.TemporaryDirectory(prefix="siamstream-bench-") as scratch:
        network = random_network(config)
        if package_dir is not None:
            package = read_package(package_dir)
        else:
            package = export_with_compiled_stages(
                network, config, Path(scratch) / "fp32", buckets=compile_buckets
            )
        runner = PackageRunner(package)
        _, request = init_track(config, frames[0], box)
        template = compare(
            {"template": lambda: runner.template(request.crop, request.box_prior)}, repeats, warmup
        )
        steps = time_steps(config, runner, frames, box, warmup)
        inputs = search_inputs(config, runner, frames, box)
        report: dict = {
            "tracker": config.name,
            "frames": frame_count,
            "warmup": warmup,
            "repeats": repeats,
            "machine": describe_machine(),
            "stage_form": runner.stage_form,
            "template": template.arms["template"].summary.to_dict(),
            "steps": {stage: getattr(steps, stage).to_dict() for stage in ("crop", "search", "post", "step")},
            "overhead_pct": 100.0 * (steps.step.median_ms - steps.search.median_ms) / steps.step.median_ms,
        }
        if package_dir is None:
            eager = eager_search(SearchStage(network))
            comparison = compare(
                {
                    "package": lambda: runner.search(inputs.embedding, inputs.crops),
                    "eager": lambda: eager(inputs.embedding, inputs.crops),
                },
                repeats,
                warmup,
            )
            report["eager"] = {"speedup": comparison.arms["eager"].ratio, **comparison.to_dict()}
        else:
            report["eager"] = {
                "skipped": "a package's network is not rebuilt eagerly (no --package to compare)"
            }
        report["batch"] = batch_comparisons(config, runner, frames, box, batch_sizes, repeats, warmup)
        reason = "--no-bf16" if not bf16 else bf16_skip_reason(package_dir)
        if reason is None:
            bf16_package = export_with_compiled_stages(
                network, config, Path(scratch) / "bf16", Precision.BF16, buckets=compile_buckets
            )
            bf16_runner = PackageRunner(bf16_package)
            bf16_inputs = search_inputs(config, bf16_runner, frames, box)
            comparison = compare(
                {
                    "fp32": lambda: runner.search(inputs.embedding, inputs.crops),
                    "bf16": lambda: bf16_runner.search(bf16_inputs.embedding, bf16_inputs.crops),
                },
                repeats,
                warmup,
            )
            bf16_steps = time_steps(config, bf16_runner, frames, box, warmup)
            report["bf16"] = {
                "stage_form": bf16_runner.stage_form,
                "speedup": 1.0 / comparison.arms["bf16"].ratio,
                "max_box_diff_px": max_box_difference(steps.results, bf16_steps.results),
                "tracked_frames": len(steps.results),
                **comparison.to_dict(),
            }
        else:
            report["bf16"] = {"skipped": reason}
    return report


def print_report(report: dict) -> None:
    print(
        f"tracker {report['tracker']}: step timings over {report['frames']} frames after {report['warmup']} "
        f"warm-up frames; comparisons: {report['repeats']} timed calls per arm after {report['warmup']} "
        "warm-up calls, arms alternating call by call"
    )
    print(machine_line(report["machine"]))
    print(f"stages: {report['stage_form']}")
    print(table_header())
    print(summary_row("template stage", Summary.from_dict(report["template"])))
    labels = {"crop": "crop", "search": "search forward", "post": "post-processing", "step": "whole step"}
    for stage, label in labels.items():
        print(summary_row(label, Summary.from_dict(report["steps"][stage])))
    print(f"  overhead: {report['overhead_pct']:.2f} % of the median step is not the search forward")
    print("the package's search stage against the eager stage it was exported from (same weights and crops):")
    _print_comparison(report["eager"])
    for row in report["batch"]:
        if row["templates"] == 1:
            print(f"one template batched and single, the same call both ways (noise): {row['speedup']:.2f}x")
        else:
            print(
                f"one search call over {row['templates']} different templates ('batched') against "
                f"{row['templates']} single calls ('single'): {row['speedup']:.2f}x"
            )
        _print_comparison(row)
    print("bf16 package against fp32 (same weights, same crops):")
    _print_comparison(report["bf16"])
    if "max_box_diff_px" in report["bf16"]:
        bf16 = report["bf16"]
        print(
            f"  bf16 search {bf16['speedup']:.2f}x the fp32 speed; largest box difference over "
            f"{bf16['tracked_frames']} tracked frames {bf16['max_box_diff_px']:.3f} px"
        )


def _print_comparison(figures: dict) -> None:
    if "skipped" in figures:
        print(f"  skipped: {figures['skipped']}")
        return
    for line in comparison_lines(Comparison.from_dict(figures)):
        print(line)
