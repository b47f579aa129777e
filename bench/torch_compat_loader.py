"""Run exported tracker stages under another torch: the half of `triton_torch_compat.py` in the scratch venv.

    <scratch venv>/bin/python bench/torch_compat_loader.py MANIFEST.json

Needs only torch and numpy (it runs where siamstream is not installed). For every entry of the manifest it
loads the package's TorchScript stages with `torch.jit.load`, runs them on the saved inputs and saves the
outputs beside them, so that the caller compares them with what the exporting torch computed. A stage that
fails to load or to run is recorded with its error instead of stopping the others.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch


def run_entry(entry: dict) -> dict:
    """Load and run one package's stages; the outputs go to `entry["outputs"]`, errors into the result."""
    root = Path(entry["package"])
    inputs = np.load(entry["inputs"])
    outputs: dict[str, np.ndarray] = {}
    result: dict = {"name": entry["name"], "errors": {}}
    for stage, names in entry["stages"].items():
        try:
            module = torch.jit.load(str(root / f"{stage}.pt"), map_location="cpu")
            with torch.no_grad():
                produced = module(*(torch.from_numpy(inputs[f"{stage}.{name}"]) for name in names))
        except Exception as error:  # every failure is the finding, whatever its type
            result["errors"][stage] = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
            continue
        if isinstance(produced, torch.Tensor):
            produced = (produced,)
        for index, tensor in enumerate(produced):
            outputs[f"{stage}.{index}"] = tensor.float().numpy()
    # numpy's stubs type `**kwds` against its keyword `allow_pickle`; the names here are the stages' outputs.
    np.savez(entry["outputs"], **cast("dict[str, Any]", outputs))
    return result


def main(manifest_path: str) -> int:
    manifest = json.loads(Path(manifest_path).read_text())
    torch.set_num_threads(manifest["threads"])
    results = [run_entry(entry) for entry in manifest["entries"]]
    print(json.dumps({"torch": torch.__version__, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
