"""SiamFC head: full cross-correlation scaled by `out_scale`; no parameters (siamfc-pytorch's `SiamFC`)."""

from torch import Tensor, nn

from siamstream.nn.correlation import xcorr_full


class SiamFCHead(nn.Module):
    """Response [B,1,S,S] = out_scale * xcorr(search map, template map); siamfc-pytorch learns no bias."""

    def __init__(self, out_scale: float):
        super().__init__()
        self.out_scale = out_scale

    def forward(self, template_feature: Tensor, search_feature: Tensor) -> Tensor:
        # The raw correlation sums C*k*k = 9216 products, which overflows fp16 (max 65504): use float32.
        return xcorr_full(search_feature.float(), template_feature.float()) * self.out_scale
