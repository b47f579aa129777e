"""Batched correlations of search features with per-stream template kernels.

Both fold the batch into the channel groups of one convolution, so that row `b` of the search features is
correlated only with row `b` of the kernels: different streams' templates run together in one call.
"""

import torch.nn.functional as F
from torch import Tensor


def xcorr_depthwise(search: Tensor, kernel: Tensor) -> Tensor:
    """Depth-wise correlation: each channel of `search` [B,C,H,W] with the same channel of `kernel` [B,C,h,w].

    Returns [B, C, H-h+1, W-w+1].
    """
    batch = search.size(0)
    channels = search.size(1)
    folded = search.reshape(1, batch * channels, search.size(2), search.size(3))
    weight = kernel.reshape(batch * channels, 1, kernel.size(2), kernel.size(3))
    response = F.conv2d(folded, weight, groups=batch * channels)
    return response.reshape(batch, channels, response.size(2), response.size(3))


def xcorr_full(search: Tensor, kernel: Tensor) -> Tensor:
    """Full cross-correlation over all channels (SiamFC): `search` [B,C,H,W] with `kernel` [B,C,h,w].

    Returns [B, 1, H-h+1, W-w+1].
    """
    batch = search.size(0)
    folded = search.reshape(1, batch * search.size(1), search.size(2), search.size(3))
    response = F.conv2d(folded, kernel, groups=batch)
    return response.reshape(batch, 1, response.size(2), response.size(3))
