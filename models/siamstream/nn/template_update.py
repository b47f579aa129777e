"""The online template update of SiamMargin as TorchScript stages (docs/architecture.md, "Template update").

A package that supports the update exports a search stage that also returns the search crop's per-level
feature maps, and a third stage `update.pt`:
- `FeatureSearchStage`: `forward(template_embedding [B,D], crop_x [B,3,X,X]) -> (*head outputs,
  search_features float32 [B, L*C, F, F])`, the L level maps concatenated along channels;
- `TemplateUpdateStage`: `forward(template_embedding [B,D], search_features [B,L*C,F,F], roi [B,4],
  rate [B]) -> float32 [B,D]`: `roi` (x1, y1, x2, y2 in search-crop pixels relative to the crop centre)
  is the template crop's footprint around the target; its central part that the template maps cover
  (`template side * stride / exemplar` of it, 56/127 for the ResNet-50 neck's 7x7 maps) is RoI-Aligned
  from each level's map into a map of the template's side; the candidate template is built from those
  maps exactly as the template stage builds it from the template crop's, and the stage returns
  `(1 - rate) * template_embedding + rate * candidate` per row.
The update therefore reuses the frame's search features: it costs two small matrix products per level and
the template head's `conv_kernel`, not a second backbone pass.
"""

import torch
from torch import Tensor, nn

from siamstream.config import Precision, TrackerConfig
from siamstream.nn.network import SiameseNetwork
from siamstream.nn.roi_align import roi_align
from siamstream.nn.stages import PRECISION_DTYPES, SearchStage, _inference_copy

SEARCH_FEATURES_OUTPUT = "search_features"


class FeatureSearchStage(SearchStage):
    """`SearchStage` that also returns the search features the update stage reads."""

    def forward(self, template_embedding: Tensor, crop_x: Tensor):
        features = self.network.features(crop_x.to(self.compute_dtype))
        outputs = self.network.head_outputs(template_embedding.to(self.compute_dtype), features)
        # Tuple concatenation, not unpacking: TorchScript cannot star-unpack a tuple.
        return outputs + (torch.cat(features, 1).float(),)  # noqa: RUF005


class TemplateUpdateStage(nn.Module):
    """Blend a candidate template RoI-Aligned from the search features into the template embedding."""

    def __init__(self, network: SiameseNetwork, config: TrackerConfig, precision: Precision = Precision.FP32):
        super().__init__()
        if not network.feature_map_template:
            raise ValueError(f"{config.name}: the template update needs a feature-map template")
        self.compute_dtype = PRECISION_DTYPES[precision]
        self.network = _inference_copy(network, precision)
        self.stride = float(config.crop.stride)
        exemplar = config.crop.exemplar_size
        with torch.inference_mode():
            template_maps = network.features(torch.zeros(1, 3, exemplar, exemplar))
        self.levels = len(template_maps)
        self.channels = template_maps[0].size(1)
        self.template_side = template_maps[0].size(3)
        # Share of the template crop that the template maps cover (their cells times the stride).
        self.footprint = self.template_side * self.stride / exemplar
        self.eval()

    def forward(
        self, template_embedding: Tensor, search_features: Tensor, roi: Tensor, rate: Tensor
    ) -> Tensor:
        batch = search_features.size(0)
        height = search_features.size(2)
        width = search_features.size(3)
        maps = search_features.to(self.compute_dtype).reshape(
            batch, self.levels, self.channels, height, width
        )
        roi = roi.float()
        middle = (roi[:, :2] + roi[:, 2:]) * 0.5
        half = (roi[:, 2:] - roi[:, :2]) * (0.5 * self.footprint)
        # Crop pixels relative to the crop centre -> aligned feature units (the map centre is at F/2).
        map_centre = torch.tensor([width / 2.0, height / 2.0], device=roi.device)
        boxes = torch.cat([middle - half, middle + half], 1) / self.stride + map_centre.repeat(2)
        candidate_maps = [roi_align(level_map, boxes, self.template_side) for level_map in maps.unbind(1)]
        candidate = self.network.template_from_features(candidate_maps).float()
        blend = rate.float().reshape(batch, 1)
        return template_embedding.float() * (1.0 - blend) + candidate * blend


def script_update_stages(
    network: SiameseNetwork, config: TrackerConfig, precision: Precision = Precision.FP32
) -> tuple[torch.jit.ScriptModule, torch.jit.ScriptModule]:
    """TorchScript (feature-returning search, update) stages, frozen like `script_stages`'s."""
    search = torch.jit.freeze(torch.jit.script(FeatureSearchStage(network, precision)))
    update = torch.jit.freeze(torch.jit.script(TemplateUpdateStage(network, config, precision)))
    return search, update
