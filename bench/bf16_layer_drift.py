"""Where a bf16 package departs from fp32: the relative difference of every module's output, layer by layer.

    .venv/bin/python bench/bf16_layer_drift.py [--tracker siamrpnpp_mobilenetv2] [--checkpoint PATH]
        [--depth 2] [--seed 0]

It builds the tracker's network (seeded random weights with plausible batch-norm statistics, or a
SiamStream training checkpoint's), runs the template and search stages once in fp32 and once in bf16 (the
package's stage modules, weights converted as `export --precision bf16` converts them) on the same random
crops, and prints, for the search stage's modules down to `--depth` dots in their names, in the order they
ran, `max |bf16 - fp32| / max |fp32|` of their outputs, then the same for the stage's outputs. A module
whose figure jumps above its inputs' is where bf16 loses the precision; not a timing (no harness needed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import Tensor, nn

from siamstream.benchmark.machine import describe_machine, machine_line
from siamstream.benchmark.tracker import benchmark_network
from siamstream.checkpoint import CheckpointError
from siamstream.config import Precision
from siamstream.nn.network import SiameseNetwork
from siamstream.nn.stages import SearchStage, TemplateStage


def module_outputs(
    network: SiameseNetwork, precision: Precision, inputs: tuple[Tensor, Tensor, Tensor], depth: int
) -> tuple[dict[str, Tensor], tuple[Tensor, ...]]:
    """The float32 outputs of the search stage's modules (named down to `depth` dots), in the order they
    ran, and the stage's outputs, for `inputs` (template crops, target sizes, search crops)."""
    template, search = TemplateStage(network, precision), SearchStage(network, precision)
    outputs: dict[str, Tensor] = {}

    def keep(name: str):
        def hook(module: nn.Module, args: object, output: object) -> None:
            if isinstance(output, Tensor):
                outputs[name] = output.float().clone()  # a later in-place op (ReLU) would change it

        return hook

    for name, module in search.network.named_modules():
        if name and name.count(".") < depth:
            module.register_forward_hook(keep(name))
    crop_z, box_prior, crop_x = inputs
    with torch.no_grad():
        results = search(template(crop_z, box_prior), crop_x)
    return outputs, tuple(results)


def relative(bf16: Tensor, fp32: Tensor) -> float:
    return float((bf16 - fp32).abs().max() / fp32.abs().max().clamp_min(1e-12))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tracker", default="siamrpnpp_mobilenetv2")
    parser.add_argument("--checkpoint", type=Path, help="SiamStream training checkpoint (its config wins)")
    parser.add_argument("--depth", type=int, default=2, help="module name depth (dots) to report")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    try:
        config, network, weights = benchmark_network(args.tracker, args.checkpoint, args.seed)
    except CheckpointError as error:
        raise SystemExit(str(error)) from None
    generator = torch.Generator().manual_seed(args.seed)
    exemplar, instance = config.crop.exemplar_size, config.crop.instance_size
    inputs = (
        torch.randint(0, 256, (1, 3, exemplar, exemplar), dtype=torch.uint8, generator=generator),
        torch.tensor([[0.4 * exemplar, 0.3 * exemplar]]),
        torch.randint(0, 256, (1, 3, instance, instance), dtype=torch.uint8, generator=generator),
    )
    fp32, fp32_results = module_outputs(network, Precision.FP32, inputs, args.depth)
    bf16, bf16_results = module_outputs(network, Precision.BF16, inputs, args.depth)
    print(machine_line(describe_machine()))
    print(f"{config.name}, {weights}: max |bf16 - fp32| / max |fp32| of each search-stage module's output")
    for name, output in fp32.items():
        if name in bf16 and bf16[name].shape == output.shape:
            print(f"  {relative(bf16[name], output):8.4f}  {name}")
    for index, (low, full) in enumerate(zip(bf16_results, fp32_results, strict=True)):
        print(f"  {relative(low, full):8.4f}  stage output {index}")


if __name__ == "__main__":
    main()
