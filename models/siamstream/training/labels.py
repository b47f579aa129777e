"""Label assignment per head family: which score-map cells are positive, negative or ignored, and the
regression targets of the positives.

Every function is pure numpy. Conventions:
- the target box is `xyxy` (x1, y1, x2, y2) in search-crop pixels RELATIVE TO THE CROP CENTRE, the frame
  of `tracking.anchors.grid_offsets`: cell (i, j) of an S x S map lies at (offsets[j], offsets[i]);
- classification labels are float32 with 1 = positive (target), 0 = negative (background), -1 = ignored;
- `positive_pair=False` is a negative pair (the search crop holds another object): nothing is positive and
  negatives are drawn where the target's positives would be, as pysot and SiamBAN do, so the net learns to
  reject look-alikes at the centre rather than easy background.
Random subsampling takes a `numpy.random.Generator`, so a label is reproducible from its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from siamstream.tracking.anchors import ban_points, grid_offsets, rpn_anchors


@dataclass(frozen=True)
class SampleCaps:
    """How many cells a label keeps (pysot `TRAIN.POS_NUM`, `TOTAL_NUM - POS_NUM`, `NEG_NUM`)."""

    positives: int = 16
    negatives: int = 48
    negatives_in_negative_pair: int = 16


def keep_at_most(mask: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """A copy of the bool `mask` with at most `count` True entries, chosen uniformly without replacement."""
    chosen = np.flatnonzero(mask)
    kept = np.zeros(mask.size, dtype=bool)
    if len(chosen) > count:
        chosen = rng.choice(chosen, size=count, replace=False)
    kept[chosen] = True
    return kept.reshape(mask.shape)


def _subsampled_labels(
    positive: np.ndarray,
    negative: np.ndarray,
    caps: SampleCaps,
    positive_pair: bool,
    rng: np.random.Generator,
) -> np.ndarray:
    labels = np.full(positive.shape, -1.0, dtype=np.float32)
    if positive_pair:
        positive = keep_at_most(positive, caps.positives, rng)
        negative = keep_at_most(negative & ~positive, caps.negatives, rng)
        labels[positive] = 1.0
    else:
        negative = keep_at_most(negative, caps.negatives_in_negative_pair, rng)
    labels[negative] = 0.0
    return labels


def box_iou_xyxy(boxes: np.ndarray, box: np.ndarray) -> np.ndarray:
    """IoU of each row of `boxes` [N, 4] with one `box` [4], all continuous xyxy."""
    width = np.clip(np.minimum(boxes[:, 2], box[2]) - np.maximum(boxes[:, 0], box[0]), 0, None)
    height = np.clip(np.minimum(boxes[:, 3], box[3]) - np.maximum(boxes[:, 1], box[1]), 0, None)
    inter = width * height
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + (box[2] - box[0]) * (box[3] - box[1]) - inter
    return inter / np.maximum(union, 1e-12)


@dataclass(frozen=True)
class AnchorLabels:
    """RPN labels (anchor-major like `rpn_anchors`): cls [A,S,S], delta [4,A,S,S] (dx, dy, dw, dh),
    delta_weight [A,S,S] = 1/n_pos on the kept positives, 0 elsewhere."""

    cls: np.ndarray
    delta: np.ndarray
    delta_weight: np.ndarray


def anchor_labels(
    box: np.ndarray,
    anchors_cxcywh: np.ndarray,
    score_size: int,
    positive_pair: bool,
    rng: np.random.Generator,
    positive_iou: float = 0.6,
    negative_iou: float = 0.3,
    caps: SampleCaps = SampleCaps(),
) -> AnchorLabels:
    """pysot `AnchorTarget`: anchors with IoU > `positive_iou` are positive, IoU < `negative_iou` negative.

    `anchors_cxcywh` is [A*S*S, 4] from `rpn_anchors` (centre-relative crop px). Deltas are
    ((tx-ax)/aw, (ty-ay)/ah, log(tw/aw), log(th/ah)) for every anchor. In a negative pair the negatives
    are the anchors of the 7x7 cells around the box centre (clipped to the map).
    """
    shape = _anchor_map_shape(anchors_cxcywh, score_size)
    ax, ay, aw, ah = (anchors_cxcywh[:, k].astype(np.float64) for k in range(4))
    tx, ty = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    tw, th = box[2] - box[0], box[3] - box[1]
    delta = np.stack([(tx - ax) / aw, (ty - ay) / ah, np.log(tw / aw), np.log(th / ah)])
    delta = delta.reshape(4, *shape).astype(np.float32)
    if positive_pair:
        iou = _anchor_iou(box, anchors_cxcywh, score_size)
        cls = _subsampled_labels(iou > positive_iou, iou < negative_iou, caps, True, rng)
    else:
        near = np.zeros(shape, dtype=bool)
        row, col = _nearest_cell(tx, ty, anchors_cxcywh[:score_size, 0], score_size)  # row 0 of anchor 0
        near[:, max(row - 3, 0) : row + 4, max(col - 3, 0) : col + 4] = True
        cls = _subsampled_labels(np.zeros(shape, bool), near, caps, False, rng)
    positives = cls == 1.0
    weight = np.zeros(shape, dtype=np.float32)
    weight[positives] = 1.0 / max(positives.sum(), 1)
    return AnchorLabels(cls=cls, delta=delta, delta_weight=weight)


def _anchor_map_shape(anchors_cxcywh: np.ndarray, score_size: int) -> tuple[int, int, int]:
    return len(anchors_cxcywh) // (score_size * score_size), score_size, score_size


def _anchor_iou(box: np.ndarray, anchors_cxcywh: np.ndarray, score_size: int) -> np.ndarray:
    """IoU [A,S,S] of every anchor with `box` (xyxy)."""
    ax, ay, aw, ah = (anchors_cxcywh[:, k].astype(np.float64) for k in range(4))
    corners = np.stack([ax - aw / 2, ay - ah / 2, ax + aw / 2, ay + ah / 2], 1)
    iou = box_iou_xyxy(corners, np.asarray(box, dtype=np.float64))
    return iou.reshape(_anchor_map_shape(anchors_cxcywh, score_size))


def margin_cell_labels(
    box: np.ndarray,
    anchors_cxcywh: np.ndarray,
    score_size: int,
    positive_pair: bool,
    positive_iou: float = 0.6,
) -> np.ndarray:
    """SiamMargin's correlation-map labels [S,S] (float32, 1 target, 0 background), "shared from RPN": 1
    where any anchor of the cell has IoU > `positive_iou` with `box`, 0 elsewhere; all 0 in a negative pair.

    Taken before the RPN's subsampling (a positive anchor left out of the RPN loss is still on the
    target). A target no anchor fits (far more elongated than their 1:3, e.g. 200x16 px, or far smaller
    than 64x64) reaches no positive anchor; then the cell nearest the box centre, whose anchors overlap
    it most, is positive ("at least one positive"), instead of the whole map, target included, being
    taught as background.
    """
    labels = np.zeros((score_size, score_size), dtype=np.float32)
    if not positive_pair:
        return labels
    positive = np.any(_anchor_iou(box, anchors_cxcywh, score_size) > positive_iou, axis=0)
    if not positive.any():
        centre_x, centre_y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        positive[_nearest_cell(centre_x, centre_y, anchors_cxcywh[:score_size, 0], score_size)] = True
    labels[positive] = 1.0
    return labels


def _nearest_cell(x: float, y: float, offsets: np.ndarray, score_size: int) -> tuple[int, int]:
    stride = float(offsets[1] - offsets[0]) if score_size > 1 else 1.0
    col = int(np.clip(round((x - offsets[0]) / stride), 0, score_size - 1))
    row = int(np.clip(round((y - offsets[0]) / stride), 0, score_size - 1))
    return row, col


def anchor_grid(
    stride: int, ratios: tuple[float, ...], scales: tuple[float, ...], score_size: int
) -> np.ndarray:
    """The anchors `anchor_labels` expects: `rpn_anchors` [A*S*S, 4] cxcywh, centre-relative crop px."""
    return rpn_anchors(stride, tuple(ratios), tuple(scales), score_size)


@dataclass(frozen=True)
class PointLabels:
    """Anchor-free labels: cls [S,S] (1/0/-1), ltrb [4,S,S] distances (l, t, r, b) in crop px from each
    cell to the box sides (negative outside the box), centerness [S,S] (0 where a side distance is <= 0)."""

    cls: np.ndarray
    ltrb: np.ndarray
    centerness: np.ndarray


def _points(stride: int, score_size: int) -> tuple[np.ndarray, np.ndarray]:
    points = ban_points(stride, score_size)
    return (
        points[:, 0].astype(np.float64).reshape(score_size, score_size),
        points[:, 1].astype(np.float64).reshape(score_size, score_size),
    )


def _ltrb(box: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    return np.stack([px - box[0], py - box[1], box[2] - px, box[3] - py])


def centerness_target(ltrb: np.ndarray) -> np.ndarray:
    """FCOS/SiamCAR centerness sqrt(min(l,r)/max(l,r) * min(t,b)/max(t,b)); 0 outside the box."""
    inside = np.all(ltrb > 0, axis=0)
    safe = np.where(inside[None], ltrb, 1.0)
    value = np.sqrt(
        np.minimum(safe[0], safe[2])
        / np.maximum(safe[0], safe[2])
        * np.minimum(safe[1], safe[3])
        / np.maximum(safe[1], safe[3])
    )
    return np.where(inside, value, 0.0).astype(np.float32)


def _point_labels(
    box: np.ndarray,
    stride: int,
    score_size: int,
    positive_pair: bool,
    rng: np.random.Generator | None,
    positive: np.ndarray,
    negative: np.ndarray,
    caps: SampleCaps | None,
) -> PointLabels:
    """Subsampled labels, or dense ones when `caps` is None. A negative pair draws its negatives from
    `positive`, where the target would be (hqucv/siamban siamban/datasets/point_target.py `neg`)."""
    px, py = _points(stride, score_size)
    ltrb = _ltrb(box, px, py)
    if caps is None:  # dense labels: every cell is either positive or negative
        cls = np.where(positive & positive_pair, 1.0, 0.0).astype(np.float32)
    elif rng is None:
        raise ValueError("subsampled labels need a random generator")
    elif positive_pair:
        cls = _subsampled_labels(positive, negative, caps, True, rng)
    else:
        cls = _subsampled_labels(np.zeros_like(positive), positive, caps, False, rng)
    return PointLabels(cls=cls, ltrb=ltrb.astype(np.float32), centerness=centerness_target(ltrb))


def _ellipse(box: np.ndarray, px: np.ndarray, py: np.ndarray, fraction: float) -> np.ndarray:
    """((x-cx)/(f*w))^2 + ((y-cy)/(f*h))^2: < 1 inside the ellipse with semi-axes f*w, f*h."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    w, h = box[2] - box[0], box[3] - box[1]
    return ((px - cx) / (fraction * w)) ** 2 + ((py - cy) / (fraction * h)) ** 2


def ellipse_labels(
    box: np.ndarray,
    stride: int,
    score_size: int,
    positive_pair: bool,
    rng: np.random.Generator,
    caps: SampleCaps = SampleCaps(),
) -> PointLabels:
    """SiamBAN: positive inside the small ellipse E2 (semi-axes w/4, h/4, strictly), negative outside the
    large ellipse E1 (semi-axes w/2, h/2, strictly), ignored between. Negative pair: negatives drawn
    inside E2 (hqucv/siamban siamban/datasets/point_target.py `PointTarget.__call__`, `neg=True`)."""
    px, py = _points(stride, score_size)
    large = _ellipse(box, px, py, 0.5)
    small = _ellipse(box, px, py, 0.25)
    return _point_labels(box, stride, score_size, positive_pair, rng, small < 1, large > 1, caps)


def circle_radius(width: float, height: float) -> float:
    """SiamCAN's circle C2 radius (w/2 * h/2) / sqrt((w/2)^2 + (h/2)^2): the distance from the centre to a
    side of the rhombus joining the box's edge midpoints, so C2 fits inside the ellipse E1."""
    half_w, half_h = width / 2, height / 2
    return half_w * half_h / float(np.hypot(half_w, half_h))


def _centre_distance2(box: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Squared distance of each point to the box centre, crop px^2."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return (px - cx) ** 2 + (py - cy) ** 2


def circle_ellipse_labels(
    box: np.ndarray,
    stride: int,
    score_size: int,
    positive_pair: bool,
    rng: np.random.Generator,
    caps: SampleCaps = SampleCaps(),
) -> PointLabels:
    """SiamCAN (paper 002, eq. 12): positive strictly inside the circle C2 around the box centre (radius
    `circle_radius`), negative outside the ellipse E1 (semi-axes w/2, h/2), ignored between. Negative
    pair: negatives drawn inside C2, where SiamBAN (which the paper's labels follow) draws them in E2."""
    px, py = _points(stride, score_size)
    radius = circle_radius(box[2] - box[0], box[3] - box[1])
    inside_circle = _centre_distance2(box, px, py) < radius**2
    large = _ellipse(box, px, py, 0.5)
    return _point_labels(box, stride, score_size, positive_pair, rng, inside_circle, large > 1, caps)


def circle_labels(
    box: np.ndarray,
    stride: int,
    score_size: int,
    positive_pair: bool,
    rng: np.random.Generator,
    caps: SampleCaps = SampleCaps(),
) -> PointLabels:
    """SiamCAN's "Circle label" (paper 002, Table 3, row 1): circles in place of both of SiamBAN's
    ellipses. Positive strictly inside C2 (radius r = `circle_radius`), negative strictly outside the
    circle C1 of radius 2r, ignored between. The paper does not print C1; 2r keeps the 1:2 ratio of
    SiamBAN's positive and negative ellipses (E2: semi-axes w/4, h/4; E1: w/2, h/2). Negative pair:
    negatives drawn inside C2, as `circle_ellipse_labels`."""
    px, py = _points(stride, score_size)
    radius = circle_radius(box[2] - box[0], box[3] - box[1])
    distance2 = _centre_distance2(box, px, py)
    positive, negative = distance2 < radius**2, distance2 > (2 * radius) ** 2
    return _point_labels(box, stride, score_size, positive_pair, rng, positive, negative, caps)


def inside_box_labels(
    box: np.ndarray, stride: int, score_size: int, positive_pair: bool, central_fraction: float = 0.6
) -> PointLabels:
    """SiamCAR: dense labels, positive where every side distance exceeds `central_fraction` x the half
    side (0.6 in SiamCAR; 0 means anywhere inside the box), negative everywhere else; a negative pair is
    all negative. The centerness target comes with it (used or not by the objective)."""
    px, py = _points(stride, score_size)
    ltrb = _ltrb(box, px, py)
    half_w, half_h = (box[2] - box[0]) / 2, (box[3] - box[1]) / 2
    limits = np.array([half_w, half_h, half_w, half_h])[:, None, None] * central_fraction
    positive = np.all(ltrb > limits, axis=0)
    return _point_labels(box, stride, score_size, positive_pair, None, positive, ~positive, None)


@dataclass(frozen=True)
class ResponseLabels:
    """SiamFC labels: target [S,S] (1 inside the disk, 0 outside), weight [S,S] balancing the classes."""

    target: np.ndarray
    weight: np.ndarray


def disk_labels(
    box: np.ndarray, stride: int, score_size: int, positive_pair: bool, radius_px: float = 16.0
) -> ResponseLabels:
    """SiamFC: cells within `radius_px` crop pixels (Euclidean, i.e. radius_px / stride cells, inclusive)
    of the box centre are positive, all others negative; a negative pair is all negative. Weights are
    0.5 / n_pos on positives and 0.5 / n_neg on negatives (siamfc-pytorch's balanced loss), summing to 1."""
    offsets = grid_offsets(stride, score_size).astype(np.float64)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    dist2 = (offsets[None, :] - cx) ** 2 + (offsets[:, None] - cy) ** 2
    positive = (dist2 <= radius_px**2) & positive_pair
    target = positive.astype(np.float32)
    weight = np.zeros_like(target)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos:
        weight[positive] = 0.5 / n_pos
        weight[~positive] = 0.5 / n_neg
    else:
        weight[:] = 1.0 / n_neg
    return ResponseLabels(target=target, weight=weight)
