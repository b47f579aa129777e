"""Do the packages we export load in the model server's torch? Every registered tracker, every precision.

    .venv/bin/python bench/triton_torch_compat.py [--torch 2.9.1] [--venv DIR] [--trackers a,b]
        [--precisions fp32,bf16] [--threads 2] [--keep DIR]

The production model server (`deploy/compose.yaml`, `k8s/overlays/gpu/triton.yaml`) is NVIDIA's
`tritonserver:25.12-py3`, whose libtorch backend is PyTorch 2.9, while our packages are scripted with the
torch of this environment (2.13). A TorchScript file records the operators and the serialisation format of
the torch that wrote it; an older libtorch refuses what it does not know. This script exports every
registered tracker (random weights, fixed seed) with this environment's torch, runs each stage here on
fixed crops, then loads and runs the same files under the other torch in a scratch venv
(`bench/torch_compat_loader.py`) and prints, per tracker and precision, whether every stage loaded and ran
there and the largest difference of its outputs from this torch's, absolute and relative to the output's
largest magnitude.

The scratch venv is made when `--venv` does not hold one yet: `python -m venv` plus
`pip install torch==VERSION numpy`. On x86_64 PyPI's torch 2.9.1 is a CUDA build of several GB (the CPU
runs it; the loader never touches CUDA). Python's torch and Triton's libtorch backend share the TorchScript
deserialiser and operator library of their version, which is what this checks; the Triton binary itself is
not run here (no Docker).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import venv
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from siamstream.benchmark.machine import describe_machine, machine_line
from siamstream.config import Precision, TrackerConfig
from siamstream.nn.network import build_network
from siamstream.package import TrackerPackage, export_package
from siamstream.registry import get_config, list_trackers

LOADER = Path(__file__).with_name("torch_compat_loader.py")
# pip gets its time to download several GB; a load of all the trackers' stages is far quicker.
INSTALL_TIMEOUT_S = 3600
LOAD_TIMEOUT_S = 1800
# The inputs of each stage, by the names of docs/architecture.md, contract 1 and "Template update".
STAGE_INPUTS = {
    "template": ("crop_z", "box_prior"),
    "search": ("template_embedding", "crop_x"),
    "update": ("template_embedding", "search_features", "roi", "rate"),
}


def scratch_python(venv_dir: Path, torch_version: str) -> Path:
    """The interpreter of a venv holding `torch_version`, made (and the torch installed) when missing."""
    python = venv_dir / "bin" / "python"
    if not python.exists():
        venv.create(venv_dir, with_pip=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", f"torch=={torch_version}", "numpy<3"],
            check=True,
            timeout=INSTALL_TIMEOUT_S,
        )
    return python


def stage_inputs(config: TrackerConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Fixed crops and the template-stage box prior; the later inputs come from the stages' outputs."""
    exemplar, instance = config.crop.exemplar_size, config.crop.instance_size
    return {
        "template.crop_z": rng.integers(0, 256, (1, 3, exemplar, exemplar), dtype=np.uint8),
        "template.box_prior": np.array([[exemplar / 2, exemplar / 3]], dtype=np.float32),
        "search.crop_x": rng.integers(0, 256, (1, 3, instance, instance), dtype=np.uint8),
    }


def run_here(package: TrackerPackage, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the package's stages with this environment's torch, filling in the chained inputs."""
    outputs: dict[str, np.ndarray] = {}
    with torch.no_grad():
        template = torch.jit.load(str(package.template_path))
        embedding = template(*(torch.from_numpy(inputs[f"template.{n}"]) for n in STAGE_INPUTS["template"]))
        outputs["template.0"] = embedding.float().numpy()
        inputs["search.template_embedding"] = outputs["template.0"]
        search = torch.jit.load(str(package.search_path))
        produced = search(*(torch.from_numpy(inputs[f"search.{n}"]) for n in STAGE_INPUTS["search"]))
        for index, tensor in enumerate(produced):
            outputs[f"search.{index}"] = tensor.float().numpy()
        if package.meta.template_update:
            inputs["update.template_embedding"] = outputs["template.0"]
            inputs["update.search_features"] = outputs[f"search.{len(produced) - 1}"]
            side = package.config.crop.exemplar_size / 2
            inputs["update.roi"] = np.array([[-side, -side, side, side]], dtype=np.float32)
            inputs["update.rate"] = np.array([0.1], dtype=np.float32)
            update = torch.jit.load(str(package.update_path))
            blended = update(*(torch.from_numpy(inputs[f"update.{n}"]) for n in STAGE_INPUTS["update"]))
            outputs["update.0"] = blended.float().numpy()
    return outputs


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An `.npz` of named arrays (numpy's stubs type `**kwds` against its keyword `allow_pickle`)."""
    np.savez(path, **cast("dict[str, Any]", arrays))


def differences(here: dict[str, np.ndarray], there: dict[str, np.ndarray]) -> tuple[float, float]:
    """Largest absolute difference over every output, and the largest relative to its output's scale."""
    worst_abs = worst_rel = 0.0
    for name, expected in here.items():
        gap = float(np.abs(there[name] - expected).max())
        worst_abs = max(worst_abs, gap)
        worst_rel = max(worst_rel, gap / max(float(np.abs(expected).max()), 1e-12))
    return worst_abs, worst_rel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch", default="2.9.1", help="the model server's torch (default: 2.9.1)")
    parser.add_argument("--venv", type=Path, help="scratch venv (default: ~/.cache/siamstream/torch-VERSION)")
    parser.add_argument("--trackers", help="comma-separated tracker names (default: every registered one)")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="write the packages and arrays here instead of a temp dir")
    args = parser.parse_args(argv)
    names = args.trackers.split(",") if args.trackers else list_trackers()
    precisions = [Precision(value) for value in args.precisions.split(",")]
    venv_dir = args.venv or Path.home() / ".cache" / "siamstream" / f"torch-{args.torch}"
    python = scratch_python(venv_dir, args.torch)
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as scratch:
        work = args.keep or Path(scratch)
        entries: list[dict[str, Any]] = []
        expected: dict[str, dict[str, np.ndarray]] = {}
        for name in names:
            config = get_config(name)
            torch.manual_seed(0)
            network = build_network(config).eval()
            for precision in precisions:
                key = f"{name}/{precision.value}"
                package = export_package(network, config, work / key, precision)
                inputs = stage_inputs(config, np.random.default_rng(0))
                expected[key] = run_here(package, inputs)
                save_arrays(work / key / "inputs.npz", inputs)
                stages = {"template": STAGE_INPUTS["template"], "search": STAGE_INPUTS["search"]}
                if package.meta.template_update:
                    stages["update"] = STAGE_INPUTS["update"]
                entries.append(
                    {
                        "name": key,
                        "package": str(package.root),
                        "inputs": str(work / key / "inputs.npz"),
                        "outputs": str(work / key / "outputs_there.npz"),
                        "stages": stages,
                    }
                )
        manifest = work / "manifest.json"
        manifest.write_text(json.dumps({"threads": args.threads, "entries": entries}))
        completed = subprocess.run(
            [str(python), str(LOADER), str(manifest)],
            capture_output=True,
            text=True,
            check=True,
            timeout=LOAD_TIMEOUT_S,
        )
        report = json.loads(completed.stdout.splitlines()[-1])

        print(machine_line(describe_machine()))
        print(f"exported with torch {torch.__version__}; loaded and run with torch {report['torch']}")
        print(f"{'tracker/precision':34} {'stages':>6} {'loads+runs':>10} {'max |diff|':>11} {'relative':>9}")
        failures = 0
        for entry, result in zip(entries, report["results"], strict=True):
            key = entry["name"]
            if result["errors"]:
                failures += 1
                for stage, error in result["errors"].items():
                    print(f"{key:34} {stage:>6} {'FAILED':>10}  {error}")
                continue
            there = dict(np.load(entry["outputs"]))
            worst_abs, worst_rel = differences(expected[key], there)
            print(f"{key:34} {len(entry['stages']):>6} {'yes':>10} {worst_abs:>11.2e} {worst_rel:>9.2e}")
        loaded = len(entries) - failures
        print(f"{loaded} of {len(entries)} packages load and run under torch {report['torch']}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
