"""Training losses on torch tensors, each a pure function with its reduction stated.

Boxes are continuous `xyxy` in one common frame (crop pixels); `ltrb` are distances (left, top, right,
bottom) from a point to the box sides, as the anchor-free heads predict them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

_EPS = 1e-7


def select_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """pysot `select_cross_entropy_loss`: `logits` [M, 2] (background, foreground), `labels` [M] in
    {1, 0, -1}. Mean negative log-likelihood over the positives and over the negatives, averaged with
    weight 0.5 each; a half with no cell contributes 0 (so a batch of negative pairs gives 0.5 x NLL)."""
    log_probs = F.log_softmax(logits.float(), dim=-1)
    loss = logits.new_zeros((), dtype=torch.float32)
    for value in (1, 0):
        chosen = labels == value
        if chosen.any():
            loss = loss + 0.5 * F.nll_loss(log_probs[chosen], labels[chosen].long())
    return loss


def balanced_bce(logits: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """SiamFC logistic loss: sum over cells of `weight` x BCE-with-logits, averaged over the batch.

    `weight` [B, ...] sums to 1 per sample (see `labels.disk_labels`)."""
    loss = F.binary_cross_entropy_with_logits(logits.float(), target, weight=weight, reduction="sum")
    return loss / logits.size(0)


def weighted_smooth_l1(prediction: Tensor, target: Tensor, weight: Tensor, beta: float = 0.0) -> Tensor:
    """pysot `weight_l1_loss` generalised to smooth-L1: `prediction`, `target` [B, 4, ...], `weight`
    [B, ...]. Per cell the smooth-L1 (quadratic below `beta`, L1 when `beta` is 0) summed over the 4
    coordinates, times the weight, summed over cells, divided by B."""
    per_coord = F.smooth_l1_loss(prediction.float(), target, reduction="none", beta=beta)
    return (per_coord.sum(1) * weight).sum() / prediction.size(0)


def ltrb_to_xyxy(points: Tensor, ltrb: Tensor) -> Tensor:
    """Boxes [N, 4] xyxy from points [N, 2] (x, y) and distances [N, 4] (l, t, r, b)."""
    return torch.stack(
        [
            points[:, 0] - ltrb[:, 0],
            points[:, 1] - ltrb[:, 1],
            points[:, 0] + ltrb[:, 2],
            points[:, 1] + ltrb[:, 3],
        ],
        1,
    )


def _area(boxes: Tensor) -> Tensor:
    return (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)


def _intersection_and_union(predicted: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    top_left = torch.maximum(predicted[:, :2], target[:, :2])
    bottom_right = torch.minimum(predicted[:, 2:], target[:, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(1)
    return inter, _area(predicted) + _area(target) - inter


def _iou_and_union(predicted: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    inter, union = _intersection_and_union(predicted, target)
    return inter / (union + _EPS), union


def _smoothed_iou(predicted: Tensor, target: Tensor) -> Tensor:
    """(I + 1) / (U + 1), areas in crop px^2: the IoU of the FCOS-style `IOULoss` that SiamBAN and SiamCAR
    train with (hqucv/siamban siamban/models/iou_loss.py, ohhhyeahhh/SiamCAR pysot/models/loss_car.py). The
    +1 keeps the log finite for disjoint boxes; on targets of hundreds of px^2 it moves the IoU by < 1%."""
    inter, union = _intersection_and_union(predicted.float(), target.float())
    return (inter + 1) / (union + 1)


def _enclosing(predicted: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    top_left = torch.minimum(predicted[:, :2], target[:, :2])
    bottom_right = torch.maximum(predicted[:, 2:], target[:, 2:])
    return top_left, bottom_right


def _weighted_mean(losses: Tensor, weight: Tensor | None) -> Tensor:
    if losses.numel() == 0:
        return losses.new_zeros(())
    if weight is None:
        return losses.mean()
    return (losses * weight).sum() / weight.sum().clamp(min=_EPS)


def linear_iou_loss(predicted: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """Linear IoU loss 1 - (I + 1) / (U + 1), mean over boxes (or `weight`-weighted): SiamBAN's
    `linear_iou` (hqucv/siamban siamban/models/loss.py `select_iou_loss`)."""
    return _weighted_mean(1 - _smoothed_iou(predicted, target), weight)


def log_iou_loss(predicted: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """IoU loss -ln((I + 1) / (U + 1)), mean over boxes (or `weight`-weighted): UnitBox's -ln IoU (Yu et
    al. 2016, DCFNet's [35]) as SiamCAR trains it (ohhhyeahhh/SiamCAR pysot/models/loss_car.py `IOULoss`,
    the `iou` type of siamban's). Unlike 1 - IoU its gradient grows as the overlap shrinks."""
    return _weighted_mean(-torch.log(_smoothed_iou(predicted, target)), weight)


def giou_loss(predicted: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """GIoU loss 1 - IoU + (C - U) / C with C the area of the smallest enclosing box, U the union."""
    predicted, target = predicted.float(), target.float()
    iou, union = _iou_and_union(predicted, target)
    top_left, bottom_right = _enclosing(predicted, target)
    enclosing = (bottom_right - top_left).prod(1)
    return _weighted_mean(1 - iou + (enclosing - union) / (enclosing + _EPS), weight)


def diou_loss(predicted: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """DIoU loss (Zheng et al. 2020; SiamCAN eq. 15): 1 - IoU + rho^2 / c^2, rho the distance between the
    box centres, c the diagonal of the smallest enclosing box (SiamCAN's text writes c for c^2)."""
    predicted, target = predicted.float(), target.float()
    iou, _ = _iou_and_union(predicted, target)
    top_left, bottom_right = _enclosing(predicted, target)
    diagonal2 = (bottom_right - top_left).pow(2).sum(1)
    centre_gap2 = (
        ((predicted[:, :2] + predicted[:, 2:]) / 2 - (target[:, :2] + target[:, 2:]) / 2).pow(2).sum(1)
    )
    return _weighted_mean(1 - iou + centre_gap2 / (diagonal2 + _EPS), weight)


BOX_LOSSES = {
    "linear_iou": linear_iou_loss,
    "log_iou": log_iou_loss,
    "giou": giou_loss,
    "diou": diou_loss,
}


def cosine_correlation(search: Tensor, kernel: Tensor) -> Tensor:
    """Cosine similarity [B, 1, H-k+1, W-k+1] between each kernel [B, C, k, k] and every k x k window of
    `search` [B, C, H, W]: the full cross-correlation divided by the two L2 norms."""
    batch, channels = search.shape[:2]
    folded = search.reshape(1, batch * channels, *search.shape[2:])
    dot = F.conv2d(folded, kernel, groups=batch).reshape(batch, 1, -1, search.size(3) - kernel.size(3) + 1)
    ones = search.new_ones(1, 1, kernel.size(2), kernel.size(3))
    window_norm = F.conv2d(search.pow(2).sum(1, keepdim=True), ones).clamp(min=0).sqrt()
    kernel_norm = kernel.flatten(1).norm(dim=1).reshape(batch, 1, 1, 1)
    return dot / (window_norm * kernel_norm + _EPS)


def margin_loss(cosine: Tensor, labels: Tensor, margin: float = 0.25, scale: float = 16.0) -> Tensor:
    """SiamMargin's margin supervision of the correlation map (paper 003), as we define it precisely.

    `cosine` [B, 1, S, S] is the cosine similarity between the template kernel and each search window
    (`cosine_correlation`) of features that can point away from each other: taken before the ReLU (see
    `RPNMarginObjective`). After a ReLU every component is >= 0, so every cosine is >= 0, a negative's
    logit scale * (cos + margin) is at least scale * margin (4 by default) and the loss can never fall
    below about 0.5 * log(1 + e^4) = 2.0, its gradient never vanishing. `labels` [B, S, S] in {1, 0, -1}:
    1 on the target's cells, 0 elsewhere (the slides' label "shared from RPN", see
    `labels.margin_cell_labels`), -1 ignored. Each cell is a binary logistic problem on a margin-shifted,
    scaled similarity (the CosFace additive margin, made binary):

        logit = scale * (cos - margin)   for positives (target 1)
        logit = scale * (cos + margin)   for negatives (target 0)
        loss  = 0.5 * mean_pos BCE(logit, 1) + 0.5 * mean_neg BCE(logit, 0)

    so the loss only gets small when positives are above +margin and negatives below -margin: the
    "harsh supervision" that separates the target from semantically similar distractors. A half with
    no cell contributes 0.
    """
    cosine = cosine.reshape(labels.shape).float()
    loss = cosine.new_zeros(())
    for value, sign in ((1, -1.0), (0, 1.0)):
        chosen = labels == value
        if chosen.any():
            logits = scale * (cosine[chosen] + sign * margin)
            loss = loss + 0.5 * F.binary_cross_entropy_with_logits(
                logits, torch.full_like(logits, float(value))
            )
    return loss
