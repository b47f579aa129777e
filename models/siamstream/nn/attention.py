"""SiamCAN's attention modules: cross-channel attention from the template, self-spatial attention.

- `ChannelAttention` (ECA-Net style, paper eq. 1-3): the template map is averaged over its positions, a
  1-D convolution of size k (no bias, zero padding) runs along the channels, and a sigmoid gives one
  weight per channel, V [B,C]. The weights are computed from the template alone (once per target) and
  multiply the search map of the same level.
- `SpatialAttention` (CBAM style, eq. 6-7): the channel-wise mean and max of a correlation map, stacked,
  go through a kxk convolution (no bias, same padding) and a sigmoid; the result [B,1,H,W] multiplies the
  map.
"""

import torch
from torch import Tensor, nn


def _same_padding(kernel_size: int) -> int:
    if kernel_size % 2 != 1:
        raise ValueError(f"attention kernels must have an odd size, got {kernel_size}")
    return kernel_size // 2


class ChannelAttention(nn.Module):
    """`forward(template_feature [B,C,h,w]) -> channel weights [B,C]` in (0, 1); key `conv` [1,1,k]."""

    def __init__(self, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=_same_padding(kernel_size), bias=False)

    def forward(self, template_feature: Tensor) -> Tensor:
        pooled = template_feature.mean([2, 3]).unsqueeze(1)
        return torch.sigmoid(self.conv(pooled)).squeeze(1)


def apply_channel_weights(search_feature: Tensor, channel_weights: Tensor) -> Tensor:
    """Search map [B,C,H,W] with channel c of row b multiplied by `channel_weights[b, c]`."""
    return search_feature * channel_weights.unsqueeze(2).unsqueeze(3)


class SpatialAttention(nn.Module):
    """`forward(feature [B,C,H,W]) -> feature * sigmoid(conv([mean_c; max_c]))`; key `conv` [1,2,k,k]."""

    def __init__(self, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=_same_padding(kernel_size), bias=False)

    def weights(self, feature: Tensor) -> Tensor:
        """The attention [B,1,H,W] in (0, 1) that `forward` multiplies the map by."""
        pooled = torch.cat([feature.mean(1, keepdim=True), feature.amax(1, keepdim=True)], 1)
        return torch.sigmoid(self.conv(pooled))

    def forward(self, feature: Tensor) -> Tensor:
        return feature * self.weights(feature)
