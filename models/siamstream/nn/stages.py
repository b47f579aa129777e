"""The two exported stages of a network (Contract 1): `TemplateStage` and `SearchStage`.

Each wraps its own inference copy of the network in the package's precision: weights converted, inputs
(uint8 or float crops, embeddings) cast inside, outputs returned as float32, so callers never change.
"""

import copy

import torch
from torch import Tensor, nn

from siamstream.config import Precision
from siamstream.nn.network import SiameseNetwork

PRECISION_DTYPES = {
    Precision.FP32: torch.float32,
    Precision.BF16: torch.bfloat16,
    Precision.FP16: torch.float16,
}


def _inference_copy(network: SiameseNetwork, precision: Precision) -> SiameseNetwork:
    """An eval-mode, gradient-free copy of `network` in `precision`; the caller's network is untouched."""
    inference = copy.deepcopy(network).to(PRECISION_DTYPES[precision]).eval()
    return inference.requires_grad_(False)


class TemplateStage(nn.Module):
    """`forward(crop_z [B,3,Z,Z] uint8/float, box_prior [B,2]) -> template embedding float32 [B,D]`.

    Crops are BGR, 0..255; `box_prior` is the target (w, h) in template-crop pixels.
    """

    def __init__(self, network: SiameseNetwork, precision: Precision = Precision.FP32):
        super().__init__()
        self.compute_dtype = PRECISION_DTYPES[precision]
        self.network = _inference_copy(network, precision)
        self.eval()

    def forward(self, crop_z: Tensor, box_prior: Tensor) -> Tensor:
        return self.network.template_embedding(
            crop_z.to(self.compute_dtype), box_prior.to(self.compute_dtype)
        )


class SearchStage(nn.Module):
    """`forward(template_embedding float [B,D], crop_x [B,3,X,X] uint8/float) -> tuple of float32 maps`.

    Crops are BGR, 0..255; row b of `crop_x` is searched with row b of `template_embedding` (a stream
    searching several crops, like SiamFC's scales, repeats its embedding). The outputs are the network's
    `search_output_names`, one row per crop.
    """

    def __init__(self, network: SiameseNetwork, precision: Precision = Precision.FP32):
        super().__init__()
        self.compute_dtype = PRECISION_DTYPES[precision]
        self.network = _inference_copy(network, precision)
        self.eval()

    # No return annotation: TorchScript infers the family's fixed-length tuple (`tuple[Tensor, ...]` is not
    # scriptable).
    def forward(self, template_embedding: Tensor, crop_x: Tensor):
        return self.network.search_outputs(
            template_embedding.to(self.compute_dtype), crop_x.to(self.compute_dtype)
        )


def script_stages(
    network: SiameseNetwork, precision: Precision = Precision.FP32
) -> tuple[torch.jit.ScriptModule, torch.jit.ScriptModule]:
    """TorchScript (template, search) stages of `network`, frozen for inference.

    Freezing inlines the weights (each file keeps only those its stage uses) and folds batch norms into
    the convolutions (results move by about 1e-6 relative). `optimize_for_inference` is not applied: on
    CPU it bakes MKLDNN-only constants into the graph, and the same files must also run on CUDA/Triton.
    """
    template = torch.jit.freeze(torch.jit.script(TemplateStage(network, precision)))
    search = torch.jit.freeze(torch.jit.script(SearchStage(network, precision)))
    return template, search
