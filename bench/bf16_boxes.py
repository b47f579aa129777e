"""bf16 against fp32 boxes of the same trained weights, over the held-out synthetic suite.

    .venv/bin/python bench/bf16_boxes.py --checkpoint PATH [--checkpoint PATH ...] [--per-stratum 10]
        [--length 100] [--compile-buckets 1] [--json]

For each SiamStream training checkpoint (its recorded config gives the tracker), the weights are exported
as an fp32 and a bf16 package (both with compiled stages for `--compile-buckets`, which the runner takes
where they fit this CPU), and both track the papers' study's held-out suite (`stratified_suite`, seed 2000:
six strata of `--per-stratum` sequences, 640x480, `--length` frames; no training sequence is among them):

- open loop: on every frame, the fp32 track's state and search crops go through both packages (each with
  its own template embedding), and each package's box follows from that same state. The difference is
  what bf16 arithmetic alone moves a box by on one frame.
- closed loop: each package tracks the sequence on its own (`OfflineTracker`). Once the two tracks take
  different crops they can part, so this is the open-loop drift as the tracking loop amplifies it.
- open loop, head in fp32: as the open loop, with an eager bf16 network whose backbone and neck run in
  bf16 and whose head (correlation and prediction layers, and the template built from the features) runs
  in fp32: whether keeping the layers after the features in fp32 buys agreement.

Per checkpoint it prints, over all frames of the suite, the median, 95th and 99th percentile and the
largest box difference (the largest of the four xywh coordinates' differences, px), the share of frames
within 1 px, and how many sequences stay within 1 px on every frame. bf16 runs only where oneDNN runs it
natively (`mkldnn_bf16_supported`); elsewhere PyTorch would emulate it, 10-100x slower.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from siamstream.benchmark.machine import describe_machine, machine_line
from siamstream.benchmark.tracker import benchmark_network, mkldnn_bf16_supported
from siamstream.checkpoint import CheckpointError
from siamstream.cli.packaging import add_compile_argument
from siamstream.compiled import export_with_compiled_stages
from siamstream.config import Precision, TrackerConfig
from siamstream.data.synthetic import SyntheticSequence, stratified_suite
from siamstream.nn.network import SiameseNetwork
from siamstream.runner import PackageRunner
from siamstream.tracking.offline import OfflineTracker
from siamstream.tracking.step import finish_search, init_track, prepare_search

SUITE_SEED = 2000  # the papers' study's held-out suite (bench/papers_study.json)
WITHIN_PX = 1.0
FEATURE_MODULES = ("backbone", "neck")  # `SiameseNetwork.features`; every other child is the head's
LOOPS = {
    "open_loop": "open loop",
    "closed_loop": "closed loop",
    "open_loop_head_fp32": "open loop, head in fp32",
}


class StageRunner(Protocol):
    def template(self, crop_z: np.ndarray, box_prior: np.ndarray) -> np.ndarray: ...

    def search(self, template_embedding: np.ndarray, crop_x: np.ndarray) -> tuple[np.ndarray, ...]: ...


class HeadInFp32:
    """Eager stages of `network` with the backbone and neck in bf16 and the rest (the head) in fp32, called
    like `PackageRunner`'s."""

    def __init__(self, network: SiameseNetwork) -> None:
        self.network = copy.deepcopy(network).eval().to(torch.bfloat16)
        for name, child in self.network.named_children():
            if name not in FEATURE_MODULES:
                child.float()

    def _features(self, crop: np.ndarray) -> list[torch.Tensor]:
        return [level.float() for level in self.network.features(torch.from_numpy(crop).to(torch.bfloat16))]

    def template(self, crop_z: np.ndarray, box_prior: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.network.template_from_features(self._features(crop_z)).numpy()

    def search(self, template_embedding: np.ndarray, crop_x: np.ndarray) -> tuple[np.ndarray, ...]:
        with torch.inference_mode():
            outputs = self.network.head_outputs(torch.from_numpy(template_embedding), self._features(crop_x))
        return tuple(output.numpy() for output in outputs)


def box_difference(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """The largest of the four xywh coordinates' absolute differences, px."""
    return float(np.abs(np.subtract(a, b)).max())


def open_loop(
    config: TrackerConfig, fp32: PackageRunner, bf16: StageRunner, frames: list[np.ndarray], box: list[float]
) -> list[float]:
    """Per frame after the first: the box difference when both packages search the fp32 track's crops
    from the fp32 track's state."""
    state, template = init_track(config, frames[0], box)
    embedding_fp32 = fp32.template(template.crop, template.box_prior)
    embedding_bf16 = bf16.template(template.crop, template.box_prior)
    differences = []
    for frame in frames[1:]:
        request = prepare_search(config, state, frame)
        rows = request.crops.shape[0]
        outputs_fp32 = fp32.search(np.repeat(embedding_fp32, rows, axis=0), request.crops)
        outputs_bf16 = bf16.search(np.repeat(embedding_bf16, rows, axis=0), request.crops)
        next_state, result_fp32 = finish_search(config, state, request, outputs_fp32)
        _, result_bf16 = finish_search(config, state, request, outputs_bf16)
        differences.append(box_difference(result_fp32.bbox, result_bf16.bbox))
        state = next_state
    return differences


def closed_loop(
    config: TrackerConfig,
    fp32: PackageRunner,
    bf16: PackageRunner,
    frames: list[np.ndarray],
    box: list[float],
) -> list[float]:
    """Per frame after the first: the box difference between the two packages' own tracks."""
    tracks = [OfflineTracker(config, runner).track_sequence(frames, box) for runner in (fp32, bf16)]
    return [box_difference(a.bbox, b.bbox) for a, b in zip(*tracks, strict=True)][1:]


def summary(per_sequence: list[list[float]]) -> dict:
    """Percentiles of the box differences of every frame, and the frames and sequences within 1 px."""
    frames = np.concatenate(per_sequence)
    p50, p95, p99 = np.percentile(frames, [50, 95, 99])
    return {
        "frames": int(frames.size),
        "median_px": float(p50),
        "p95_px": float(p95),
        "p99_px": float(p99),
        "max_px": float(frames.max()),
        "frames_within_1px": float(np.mean(frames <= WITHIN_PX)),
        "frames_over_1px": int(np.sum(frames > WITHIN_PX)),
        "sequences_within_1px": sum(max(values) <= WITHIN_PX for values in per_sequence),
        "sequences": len(per_sequence),
    }


def measure(
    config: TrackerConfig,
    network: SiameseNetwork,
    suite: list[SyntheticSequence],
    buckets: tuple[int, ...],
) -> dict:
    with tempfile.TemporaryDirectory(prefix="siamstream-bf16-boxes-") as scratch:
        runners = {}
        for precision in (Precision.FP32, Precision.BF16):
            package = export_with_compiled_stages(
                network, config, Path(scratch) / precision.value, precision, buckets=buckets
            )
            runners[precision] = PackageRunner(package)
        fp32, bf16 = runners[Precision.FP32], runners[Precision.BF16]
        head_fp32 = HeadInFp32(network)
        differences: dict[str, list[list[float]]] = {loop: [] for loop in LOOPS}
        for sequence in suite:  # each sequence's frames rendered once for the three comparisons
            frames = [sequence.frame(index) for index in range(len(sequence))]
            box = [float(v) for v in sequence.init_box]
            differences["open_loop"].append(open_loop(config, fp32, bf16, frames, box))
            differences["closed_loop"].append(closed_loop(config, fp32, bf16, frames, box))
            differences["open_loop_head_fp32"].append(open_loop(config, fp32, head_fp32, frames, box))
        return {
            "stage_forms": {precision.value: runner.stage_form for precision, runner in runners.items()},
            **{loop: summary(values) for loop, values in differences.items()},
        }


def print_result(name: str, result: dict) -> None:
    print(f"{name} ({result['weights']}); stages: {result['stage_forms']}")
    print(
        f"  {'box difference, px':26}{'frames':>7}{'median':>8}{'p95':>8}{'p99':>8}{'max':>8}"
        "  over 1 px: frames; sequences within 1 px"
    )
    for loop, label in LOOPS.items():
        row = result[loop]
        print(
            f"  {label:26}{row['frames']:>7}{row['median_px']:>8.3f}{row['p95_px']:>8.3f}"
            f"{row['p99_px']:>8.3f}{row['max_px']:>8.2f}  {row['frames_over_1px']} "
            f"({100 * (1 - row['frames_within_1px']):.1f} %); {row['sequences_within_1px']} of "
            f"{row['sequences']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, action="append", required=True, help="training checkpoint")
    parser.add_argument(
        "--per-stratum", type=int, default=10, help="held-out sequences per stratum (6 strata)"
    )
    parser.add_argument("--length", type=int, default=100, help="frames per sequence")
    add_compile_argument(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if not mkldnn_bf16_supported():
        raise SystemExit("oneDNN does not run bf16 natively on this CPU: PyTorch would emulate it")
    suite = stratified_suite(args.per_stratum, SUITE_SEED, length=args.length)
    report: dict = {"machine": describe_machine(), "suite_seed": SUITE_SEED, "checkpoints": {}}
    if not args.json:
        print(machine_line(report["machine"]))
        print(f"held-out suite: {len(suite)} sequences x {args.length} frames (seed {SUITE_SEED})")
    for checkpoint in args.checkpoint:
        try:
            config, network, weights = benchmark_network(None, checkpoint)
        except CheckpointError as error:
            raise SystemExit(str(error)) from None
        result = {
            "tracker": config.name,
            "weights": weights,
            **measure(config, network, suite, args.compile_buckets),
        }
        report["checkpoints"][str(checkpoint)] = result
        if not args.json:
            print_result(config.name, result)
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
