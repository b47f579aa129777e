"""Generic Triton python-backend model: serves a TorchScript `model.pt` like the libtorch backend would.

Copied as `<model>/1/model.py` into the CPU test form of the model repository (see triton_repository.py)
and run by Triton's python stub, never imported by the services. The dynamic batcher hands `execute` a
list of requests; their inputs are concatenated along the batch dimension, run in ONE forward and the
outputs split back per request, so batching behaves as in the production libtorch form.
"""

import json
from pathlib import Path

import numpy as np
import torch
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Inputs `INPUT__i` and outputs `OUTPUT__i` in the order of the config, as TorchScript names them."""

    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        self._input_names = [tensor["name"] for tensor in config["input"]]
        self._output_names = [tensor["name"] for tensor in config["output"]]
        model_file = Path(args["model_repository"]) / args["model_version"] / "model.pt"
        self._model = torch.jit.load(str(model_file), map_location="cpu").eval()

    def execute(self, requests: list) -> list:
        inputs = [
            [pb_utils.get_input_tensor_by_name(request, name).as_numpy() for request in requests]
            for name in self._input_names
        ]
        rows = [part.shape[0] for part in inputs[0]]
        with torch.inference_mode():
            result = self._model(*[torch.from_numpy(np.concatenate(parts)) for parts in inputs])
        outputs = (result,) if isinstance(result, torch.Tensor) else tuple(result)
        bounds = np.cumsum(rows)[:-1]
        per_output = [np.split(output.numpy(), bounds) for output in outputs]
        return [
            pb_utils.InferenceResponse(
                output_tensors=[
                    pb_utils.Tensor(name, np.ascontiguousarray(parts[index]))
                    for name, parts in zip(self._output_names, per_output, strict=True)
                ]
            )
            for index in range(len(requests))
        ]
