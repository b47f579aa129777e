"""RoI-Align (Mask R-CNN) in plain torch: bilinear, pixel-aligned, one region per batch row, scriptable.

Coordinates are continuous feature-map units in which cell (i, j) covers [j, j+1) x [i, i+1), so its
centre is at (j + 0.5, i + 0.5) (torchvision's `aligned=True`). A region [x1, y1, x2, y2] is cut into
`output_size` x `output_size` bins; each bin averages `sampling_ratio` x `sampling_ratio` bilinear samples
at the centres of its sub-cells. Boundaries follow torchvision: a sample more than one cell outside the
map reads 0, one within a cell of the border reads the clamped border value.

Bilinear interpolation is separable, and a bin's samples form a grid, so the whole operation is two small
matrix products per row: `rows [B,P,H] @ features [B,C,H,W] @ columns [B,P,W]^T`.
"""

import torch
from torch import Tensor


def _axis_weights(start: Tensor, length: Tensor, bins: int, sampling_ratio: int, size: int) -> Tensor:
    """[B, bins, size]: the mean over each bin's samples of the bilinear weights along one axis.

    `start`, `length` [B] are the region's first edge and extent in aligned units (cell centres at
    integers once the half-cell shift is applied by the caller).
    """
    samples = bins * sampling_ratio
    steps = (torch.arange(samples, dtype=start.dtype, device=start.device) + 0.5) / samples
    position = start.unsqueeze(1) + steps.unsqueeze(0) * length.unsqueeze(1)  # [B, samples]
    inside = (position >= -1.0) & (position <= float(size))
    position = position.clamp(min=0.0)
    low = position.floor()
    at_border = low >= size - 1
    low = torch.where(at_border, torch.full_like(low, size - 1), low)
    high = torch.where(at_border, low, low + 1)
    fraction = torch.where(at_border, torch.zeros_like(position), position - low)
    cells = torch.arange(size, dtype=start.dtype, device=start.device).view(1, 1, size)
    weights = (cells == low.unsqueeze(2)).to(start.dtype) * (1.0 - fraction).unsqueeze(2)
    weights = weights + (cells == high.unsqueeze(2)).to(start.dtype) * fraction.unsqueeze(2)
    weights = weights * inside.unsqueeze(2).to(start.dtype)
    return weights.reshape(start.size(0), bins, sampling_ratio, size).mean(2)


def roi_align(features: Tensor, rois: Tensor, output_size: int, sampling_ratio: int = 2) -> Tensor:
    """Bins [B, C, output_size, output_size] of `features` [B,C,H,W] over `rois` [B,4] (x1, y1, x2, y2 in
    aligned feature units, one region per row)."""
    dtype = features.dtype
    rois = rois.to(dtype)
    x1 = rois[:, 0] - 0.5
    y1 = rois[:, 1] - 0.5
    width = rois[:, 2] - rois[:, 0]
    height = rois[:, 3] - rois[:, 1]
    rows = _axis_weights(y1, height, output_size, sampling_ratio, features.size(2))
    columns = _axis_weights(x1, width, output_size, sampling_ratio, features.size(3))
    return torch.einsum("bph,bchw,bqw->bcpq", rows, features, columns)
