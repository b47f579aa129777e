"""The compiled search stage (AOTInductor) against TorchScript and eager PyTorch, side by side in one run.

    .venv/bin/python bench/compiled_stages.py [--tracker siamrpn_alex] [--checkpoint PATH] [--buckets 1,16]
        [--frames 30] [--repeats 30] [--no-bf16]

It builds the tracker's network (seeded random weights, or a SiamStream training checkpoint's, which
also gives the config) and exports it into a temporary directory as an fp32 package with compiled stages
for `--buckets` (and, where oneDNN runs bf16 natively, as a bf16 package too). Then, through
`siamstream.benchmark.harness.compare` (every arm warmed, arms alternating call by call, medians with
quartiles):

- the search call of one frame (the tracker's crops, e.g. SiamFC's three scales): eager fp32 (the
  network's own modules, as the reference trackers run it), TorchScript fp32, compiled fp32, and the bf16
  TorchScript and compiled stages, each with its ratio to eager fp32 and the arithmetic rate it reached
  (the forward's FLOPs, counted by torch's `FlopCounterMode` on the eager call, over its median time);
- 16 templates in one compiled call against 16 compiled single calls (where 16 is a bucket);
- the largest box difference (px) over a synthetic sequence of `--frames` frames between the tracks
  of compiled fp32 and TorchScript fp32, and of compiled bf16 and TorchScript fp32.

Compiling takes about 30 s per stage, bucket and search side for AlexNet on 2 cores, minutes for ResNet-50.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from functools import partial
from pathlib import Path

from torch.utils.flop_counter import FlopCounterMode

from siamstream.benchmark.harness import compare, comparison_lines
from siamstream.benchmark.machine import describe_machine, machine_line
from siamstream.benchmark.tracker import (
    batch_comparisons,
    benchmark_network,
    eager_search,
    max_box_difference,
    mkldnn_bf16_supported,
    search_inputs,
)
from siamstream.checkpoint import CheckpointError
from siamstream.compiled import check_buckets, compile_stages
from siamstream.config import Precision
from siamstream.data.synthetic import SequenceSpec, generate_sequence
from siamstream.nn.stages import SearchStage
from siamstream.package import export_package
from siamstream.runner import PackageRunner
from siamstream.tracking.offline import OfflineTracker

BATCH = 16


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tracker", default="siamrpn_alex")
    parser.add_argument("--checkpoint", type=Path, help="SiamStream training checkpoint (its config wins)")
    parser.add_argument("--buckets", default=f"1,{BATCH}", help="compiled batch sizes, e.g. 1,16")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--no-bf16", action="store_true")
    args = parser.parse_args()
    buckets = check_buckets([int(part) for part in args.buckets.split(",")])

    try:
        config, network, weights = benchmark_network(args.tracker, args.checkpoint)
    except CheckpointError as error:
        raise SystemExit(str(error)) from None
    bf16 = not args.no_bf16 and mkldnn_bf16_supported()
    print(machine_line(describe_machine()))
    print(f"{config.name}, {weights}; compiled for batches of {', '.join(map(str, buckets))}")
    sequence = generate_sequence(SequenceSpec(name="bench", length=args.frames, seed=0))
    frames = [sequence.frame(i) for i in range(len(sequence))]
    box = tuple(float(v) for v in sequence.init_box)

    with tempfile.TemporaryDirectory(prefix="siamstream-compiled-") as scratch:
        precisions = [Precision.FP32, Precision.BF16] if bf16 else [Precision.FP32]
        runners: dict[str, PackageRunner] = {}
        for precision in precisions:
            started = time.perf_counter()
            package = export_package(network, config, Path(scratch) / precision.value, precision)
            compile_stages(network, package, buckets)
            print(f"exported and compiled {precision.value} in {time.perf_counter() - started:.0f} s")
            runners[f"torchscript {precision.value}"] = PackageRunner(package, compiled=False)
            runners[f"compiled {precision.value}"] = PackageRunner(package)
            assert runners[f"compiled {precision.value}"].stage_form.startswith("AOTInductor")

        eager = eager_search(SearchStage(network))
        inputs = {name: search_inputs(config, runner, frames, box) for name, runner in runners.items()}
        arms = {
            "eager fp32": partial(
                eager, inputs["torchscript fp32"].embedding, inputs["torchscript fp32"].crops
            )
        }
        for name, runner in runners.items():
            arms[name] = partial(runner.search, inputs[name].embedding, inputs[name].crops)
        rows = inputs["torchscript fp32"].crops.shape[0]
        with FlopCounterMode(display=False) as flops:
            arms["eager fp32"]()
        gflop = flops.get_total_flops() / 1e9
        print(
            f"\nsearch stage, one frame ({rows} crops, {gflop:.2f} GFLOP), {args.repeats} alternating calls "
            "per arm:"
        )
        comparison = compare(arms, args.repeats)
        lines = comparison_lines(comparison, width=20)
        print(lines[0] + "   GFLOP/s")
        for line, arm in zip(lines[1:], comparison.arms.values(), strict=True):
            print(f"{line}{gflop / arm.summary.median_ms * 1000:>10.1f}")

        if BATCH in buckets:
            (batch,) = batch_comparisons(
                config, runners["compiled fp32"], frames, box, (BATCH,), args.repeats, 2
            )
            batched, single = batch["arms"]["batched"], batch["arms"]["single"]
            print(
                f"\n{BATCH} templates, compiled fp32: one call {batched['median_ms']:.2f} ms, {BATCH} single "
                f"calls {single['median_ms']:.2f} ms: batched {batch['speedup']:.2f}x"
            )

        tracks = {
            name: OfflineTracker(config, runners[name]).track_sequence(frames, list(box)) for name in runners
        }
        print(f"\nlargest box difference to TorchScript fp32 over {len(frames)} frames:")
        for name, results in tracks.items():
            if name != "torchscript fp32":
                print(f"  {name:<20}{max_box_difference(results, tracks['torchscript fp32']):>10.4f} px")
    if not bf16:
        print("bf16 not compared: --no-bf16, or oneDNN emulates bf16 on this CPU")


if __name__ == "__main__":
    main()
