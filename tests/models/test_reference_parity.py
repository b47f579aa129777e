"""Parity of the step API with the public reference trackers, frame by frame.

The reference side below is a literal transcription of the numeric steps of the reference trackers,
written from their code and independent of ours (names kept as they are there):

- STVIR/pysot `pysot/tracker/base_tracker.py` (`SiameseTracker.get_subwindow`),
  `pysot/tracker/siamrpn_tracker.py` (`SiamRPNTracker.generate_anchor`, `_convert_score`, `_convert_bbox`,
  `_bbox_clip`, `init`, `track`) and `pysot/utils/anchor.py` (`Anchors.generate_anchors`);
- hqucv/siamban `siamban/tracker/siamban_tracker.py` (`generate_points`, the two-channel softmax of
  `_convert_score`, `_convert_bbox`);
- ohhhyeahhh/SiamCAR `pysot/tracker/siamcar_tracker.py` (`cal_penalty`, `coarse_location`,
  `accurate_location`, `getCenter`, `track`) and `pysot/utils/misc.py` (`bbox_clip`);
- huanglianghua/siamfc-pytorch `siamfc/ops.py` (`crop_and_resize`) and `siamfc/siamfc.py`
  (`TrackerSiamFC.init`, `update`).

Each reference `track` is split where the network runs: `search_crops` is its first half (the search
crop), `track` the rest, fed with the same random head outputs as `finish_search`. Hyperparameters (their
`cfg.TRACK` / `parse_args` values) are read from the registry config. Frames are moving random noise, so
any difference in crop geometry or interpolation shows as different bytes. Crops must be byte-identical
and boxes (xywh, image px) within `BOX_TOLERANCE_PX` (they agree to about 5e-6 px).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from siamstream.config import AnchorConfig, CARHyper, Family, FCHyper, RPNHyper, TrackerConfig
from siamstream.registry import get_config
from siamstream.tracking.step import finish_search, init_track, prepare_search

TRACKERS = (
    "siamrpnpp_r50",
    "siamrpnpp_r50_otb",
    "siamrpnpp_mobilenetv2",
    "siamrpn_alex",
    "siamban_r50",
    "siamcar_r50",
    "siamfc_alexnet",
)
FRAME_HEIGHT, FRAME_WIDTH = 360, 480
FRAME_COUNT = 40
BOX_TOLERANCE_PX = 1e-3
SCORE_TOLERANCE = 1e-5
# Init boxes xywh in image px.
SEQUENCES = {
    "top_left_corner": (3.0, 2.0, 70.0, 50.0),  # context crosses two borders: padded crops
    "bottom_right_corner": (431.5, 318.25, 46.0, 40.0),  # fractional corner, padded right and bottom
    "small_box": (233.0, 171.0, 12.0, 10.0),  # near pysot's 10 px size clip
    "tall_box": (150.5, 90.25, 36.0, 130.0),
}


# --- pysot / SiamBAN / SiamCAR -------------------------------------------------------------------------


def get_subwindow(im, pos, model_sz, original_sz, avg_chans):
    """pysot `SiameseTracker.get_subwindow`, returning the uint8 patch [1, 3, model_sz, model_sz]."""
    sz = original_sz
    im_sz = im.shape
    c = (original_sz + 1) / 2
    context_xmin = np.floor(pos[0] - c + 0.5)
    context_xmax = context_xmin + sz - 1
    context_ymin = np.floor(pos[1] - c + 0.5)
    context_ymax = context_ymin + sz - 1
    left_pad = int(max(0.0, -context_xmin))
    top_pad = int(max(0.0, -context_ymin))
    right_pad = int(max(0.0, context_xmax - im_sz[1] + 1))
    bottom_pad = int(max(0.0, context_ymax - im_sz[0] + 1))
    context_xmin = context_xmin + left_pad
    context_xmax = context_xmax + left_pad
    context_ymin = context_ymin + top_pad
    context_ymax = context_ymax + top_pad
    r, c, k = im.shape
    if any([top_pad, bottom_pad, left_pad, right_pad]):
        te_im = np.zeros((r + top_pad + bottom_pad, c + left_pad + right_pad, k), np.uint8)
        te_im[top_pad : top_pad + r, left_pad : left_pad + c, :] = im
        if top_pad:
            te_im[0:top_pad, left_pad : left_pad + c, :] = avg_chans
        if bottom_pad:
            te_im[r + top_pad :, left_pad : left_pad + c, :] = avg_chans
        if left_pad:
            te_im[:, 0:left_pad, :] = avg_chans
        if right_pad:
            te_im[:, c + left_pad :, :] = avg_chans
        im_patch = te_im[
            int(context_ymin) : int(context_ymax + 1), int(context_xmin) : int(context_xmax + 1), :
        ]
    else:
        im_patch = im[int(context_ymin) : int(context_ymax + 1), int(context_xmin) : int(context_xmax + 1), :]
    if not np.array_equal(model_sz, original_sz):
        im_patch = cv2.resize(im_patch, (model_sz, model_sz))
    return im_patch.transpose(2, 0, 1)[np.newaxis, :, :, :]


def change(r):
    return np.maximum(r, 1.0 / r)


def sz(w, h):
    pad = (w + h) * 0.5
    return np.sqrt((w + pad) * (h + pad))


def bbox_clip(x, min_value, max_value):
    return max(min_value, min(x, max_value))


class ReferencePysotCrops:
    """`init` and the crop half of `track`, shared by pysot's SiamRPN, SiamBAN and SiamCAR trackers."""

    def __init__(self, config: TrackerConfig):
        self.config = config

    def init(self, img, bbox):
        crop = self.config.crop
        self.center_pos = np.array([bbox[0] + (bbox[2] - 1) / 2, bbox[1] + (bbox[3] - 1) / 2])
        self.size = np.array([bbox[2], bbox[3]])
        w_z = self.size[0] + crop.context_amount * np.sum(self.size)
        h_z = self.size[1] + crop.context_amount * np.sum(self.size)
        s_z = round(np.sqrt(w_z * h_z))
        self.channel_average = np.mean(img, axis=(0, 1))
        return get_subwindow(img, self.center_pos, crop.exemplar_size, s_z, self.channel_average)

    def search_crops(self, img):
        crop = self.config.crop
        w_z = self.size[0] + crop.context_amount * np.sum(self.size)
        h_z = self.size[1] + crop.context_amount * np.sum(self.size)
        s_z = np.sqrt(w_z * h_z)
        self.scale_z = crop.exemplar_size / s_z
        s_x = s_z * (crop.instance_size / crop.exemplar_size)
        return get_subwindow(img, self.center_pos, crop.instance_size, round(s_x), self.channel_average)


def anchor_config(config: TrackerConfig) -> AnchorConfig:
    """The anchors of a SiamRPN config (pysot's `cfg.ANCHOR`)."""
    assert isinstance(config.hyper, RPNHyper) and config.hyper.anchors is not None
    return config.hyper.anchors


class ReferencePysotTrack(ReferencePysotCrops):
    """The rest of pysot's `SiamRPNTracker.track` (identical in SiamBAN): softmax scores, scale and
    aspect penalties, cosine window, smoothed size, clipping. Subclasses decode the boxes."""

    window: np.ndarray

    def _convert_bbox(self, delta):
        raise NotImplementedError

    def _convert_score(self, score):
        score = score.permute(1, 2, 3, 0).contiguous().view(2, -1).permute(1, 0)
        return F.softmax(score, dim=1).data[:, 1].numpy()

    def track(self, img, cls, loc):
        hyper = self.config.hyper
        assert isinstance(hyper, RPNHyper)
        scale_z = self.scale_z
        score = self._convert_score(torch.from_numpy(cls))
        pred_bbox = self._convert_bbox(torch.from_numpy(loc))
        s_c = change(
            sz(pred_bbox[2, :], pred_bbox[3, :]) / (sz(self.size[0] * scale_z, self.size[1] * scale_z))
        )
        r_c = change((self.size[0] / self.size[1]) / (pred_bbox[2, :] / pred_bbox[3, :]))
        penalty = np.exp(-(r_c * s_c - 1) * hyper.penalty_k)
        pscore = penalty * score
        pscore = pscore * (1 - hyper.window_influence) + self.window * hyper.window_influence
        best_idx = np.argmax(pscore)
        bbox = pred_bbox[:, best_idx] / scale_z
        lr = penalty[best_idx] * score[best_idx] * hyper.lr
        cx = bbox[0] + self.center_pos[0]
        cy = bbox[1] + self.center_pos[1]
        width = self.size[0] * (1 - lr) + bbox[2] * lr
        height = self.size[1] * (1 - lr) + bbox[3] * lr
        boundary = img.shape[:2]
        cx = max(0, min(cx, boundary[1]))
        cy = max(0, min(cy, boundary[0]))
        width = max(10, min(width, boundary[1]))
        height = max(10, min(height, boundary[0]))
        self.center_pos = np.array([cx, cy])
        self.size = np.array([width, height])
        return [cx - width / 2, cy - height / 2, width, height], score[best_idx]


class ReferenceSiamRPN(ReferencePysotTrack):
    """pysot `SiamRPNTracker`: anchors and their window tiled per anchor."""

    def __init__(self, config: TrackerConfig):
        super().__init__(config)
        anchors = anchor_config(config)
        self.score_size = config.crop.score_size
        self.anchor_num = len(anchors.ratios) * len(anchors.scales)
        hanning = np.hanning(self.score_size)
        window = np.outer(hanning, hanning)
        self.window = np.tile(window.flatten(), self.anchor_num)
        self.anchors = self.generate_anchor(self.score_size)

    def generate_anchor(self, score_size):
        config = anchor_config(self.config)
        # pysot Anchors.generate_anchors
        anchor = np.zeros((self.anchor_num, 4), dtype=np.float32)
        size = config.stride * config.stride
        count = 0
        for r in config.ratios:
            ws = int(math.sqrt(size * 1.0 / r))
            hs = int(ws * r)
            for s in config.scales:
                w = ws * s
                h = hs * s
                anchor[count][:] = [-w * 0.5, -h * 0.5, w * 0.5, h * 0.5][:]
                count += 1
        x1, y1, x2, y2 = anchor[:, 0], anchor[:, 1], anchor[:, 2], anchor[:, 3]
        anchor = np.stack([(x1 + x2) * 0.5, (y1 + y2) * 0.5, x2 - x1, y2 - y1], 1)
        total_stride = config.stride
        anchor_num = anchor.shape[0]
        anchor = np.tile(anchor, score_size * score_size).reshape((-1, 4))
        ori = -(score_size // 2) * total_stride
        xx, yy = np.meshgrid(
            [ori + total_stride * dx for dx in range(score_size)],
            [ori + total_stride * dy for dy in range(score_size)],
        )
        xx = np.tile(xx.flatten(), (anchor_num, 1)).flatten()
        yy = np.tile(yy.flatten(), (anchor_num, 1)).flatten()
        anchor[:, 0], anchor[:, 1] = xx.astype(np.float32), yy.astype(np.float32)
        return anchor

    def _convert_bbox(self, delta):
        delta = delta.permute(1, 2, 3, 0).contiguous().view(4, -1).numpy()
        anchor = self.anchors
        delta[0, :] = delta[0, :] * anchor[:, 2] + anchor[:, 0]
        delta[1, :] = delta[1, :] * anchor[:, 3] + anchor[:, 1]
        delta[2, :] = np.exp(delta[2, :]) * anchor[:, 2]
        delta[3, :] = np.exp(delta[3, :]) * anchor[:, 3]
        return delta


class ReferenceSiamBAN(ReferencePysotTrack):
    """SiamBAN `SiamBANTracker`: anchor-free points and a per-position window."""

    def __init__(self, config: TrackerConfig):
        super().__init__(config)
        self.score_size = config.crop.score_size
        hanning = np.hanning(self.score_size)
        self.window = np.outer(hanning, hanning).flatten()
        self.points = self.generate_points(config.crop.stride, self.score_size)

    def generate_points(self, stride, size):
        ori = -(size // 2) * stride
        x, y = np.meshgrid(
            [ori + stride * dx for dx in np.arange(0, size)], [ori + stride * dy for dy in np.arange(0, size)]
        )
        points = np.zeros((size * size, 2), dtype=np.float32)
        points[:, 0], points[:, 1] = x.astype(np.float32).flatten(), y.astype(np.float32).flatten()
        return points

    def _convert_bbox(self, delta):
        delta = delta.permute(1, 2, 3, 0).contiguous().view(4, -1).numpy()
        point = self.points
        delta[0, :] = point[:, 0] - delta[0, :]
        delta[1, :] = point[:, 1] - delta[1, :]
        delta[2, :] = point[:, 0] + delta[2, :]
        delta[3, :] = point[:, 1] + delta[3, :]
        # siamban.utils.bbox.corner2center
        x1, y1, x2, y2 = delta[0], delta[1], delta[2], delta[3]
        delta[0, :], delta[1, :], delta[2, :], delta[3, :] = (
            (x1 + x2) * 0.5,
            (y1 + y2) * 0.5,
            x2 - x1,
            y2 - y1,
        )
        return delta


class ReferenceSiamCAR(ReferencePysotCrops):
    """SiamCAR `SiamCARTracker`: upsampled maps, windowed coarse peak, unwindowed fine peak in a region."""

    def __init__(self, config: TrackerConfig):
        super().__init__(config)
        hanning = np.hanning(config.crop.score_size)
        self.window = np.outer(hanning, hanning)

    def cal_penalty(self, lrtbs, penalty_lk):
        bboxes_w = lrtbs[0, :, :] + lrtbs[2, :, :]
        bboxes_h = lrtbs[1, :, :] + lrtbs[3, :, :]
        s_c = change(sz(bboxes_w, bboxes_h) / sz(self.size[0] * self.scale_z, self.size[1] * self.scale_z))
        r_c = change((self.size[0] / self.size[1]) / (bboxes_w / bboxes_h))
        return np.exp(-(r_c * s_c - 1) * penalty_lk)

    def accurate_location(self, max_r_up, max_c_up):
        instance_size = self.config.crop.instance_size
        dist = int((instance_size - (self.config.crop.score_size - 1) * 8) / 2)
        max_r_up += dist
        max_c_up += dist
        p_cool_s = np.array([max_r_up, max_c_up])
        return p_cool_s - (np.array([instance_size, instance_size]) - 1.0) / 2.0

    def coarse_location(self, hp_score_up, p_score_up, scale_score, lrtbs):
        crop, hyper = self.config.crop, self.config.hyper
        assert isinstance(hyper, CARHyper)
        upsize = (crop.score_size - 1) * crop.stride + 1
        max_r_up_hp, max_c_up_hp = np.unravel_index(hp_score_up.argmax(), hp_score_up.shape)
        max_r = round(max_r_up_hp / scale_score)
        max_c = round(max_c_up_hp / scale_score)
        max_r = bbox_clip(max_r, 0, crop.score_size)
        max_c = bbox_clip(max_c, 0, crop.score_size)
        bbox_region = lrtbs[max_r, max_c, :]
        min_bbox = int(hyper.region_s * crop.exemplar_size)
        max_bbox = int(hyper.region_l * crop.exemplar_size)
        l_region = int(min(max_c_up_hp, bbox_clip(bbox_region[0], min_bbox, max_bbox)) / 2.0)
        t_region = int(min(max_r_up_hp, bbox_clip(bbox_region[1], min_bbox, max_bbox)) / 2.0)
        r_region = int(min(upsize - max_c_up_hp, bbox_clip(bbox_region[2], min_bbox, max_bbox)) / 2.0)
        b_region = int(min(upsize - max_r_up_hp, bbox_clip(bbox_region[3], min_bbox, max_bbox)) / 2.0)
        mask = np.zeros_like(p_score_up)
        mask[
            max_r_up_hp - t_region : max_r_up_hp + b_region + 1,
            max_c_up_hp - l_region : max_c_up_hp + r_region + 1,
        ] = 1
        return p_score_up * mask

    def getCenter(self, hp_score_up, p_score_up, scale_score, lrtbs):
        score_up = self.coarse_location(hp_score_up, p_score_up, scale_score, lrtbs)
        max_r_up, max_c_up = np.unravel_index(score_up.argmax(), score_up.shape)
        disp = self.accurate_location(max_r_up, max_c_up)
        disp_ori = disp / self.scale_z
        new_cx = disp_ori[1] + self.center_pos[0]
        new_cy = disp_ori[0] + self.center_pos[1]
        return max_r_up, max_c_up, new_cx, new_cy

    def track(self, img, cls, loc, cen):
        crop, hyper = self.config.crop, self.config.hyper
        assert isinstance(hyper, CARHyper)
        cls = F.softmax(torch.from_numpy(cls), dim=1).data[:, 1, :, :].numpy().squeeze()
        cen = (cen - cen.min()) / np.ptp(cen)
        cen = cen.squeeze()
        lrtbs = loc.squeeze()
        upsize = (crop.score_size - 1) * crop.stride + 1
        penalty = self.cal_penalty(lrtbs, hyper.penalty_k)
        p_score = penalty * cls * cen
        if hyper.hanming:
            hp_score = p_score * (1 - hyper.window_influence) + self.window * hyper.window_influence
        else:
            hp_score = p_score
        hp_score_up = cv2.resize(hp_score, (upsize, upsize), interpolation=cv2.INTER_CUBIC)
        p_score_up = cv2.resize(p_score, (upsize, upsize), interpolation=cv2.INTER_CUBIC)
        cls_up = cv2.resize(cls, (upsize, upsize), interpolation=cv2.INTER_CUBIC)
        lrtbs = np.transpose(lrtbs, (1, 2, 0))
        lrtbs_up = cv2.resize(lrtbs, (upsize, upsize), interpolation=cv2.INTER_CUBIC)
        scale_score = upsize / crop.score_size
        max_r_up, max_c_up, new_cx, new_cy = self.getCenter(hp_score_up, p_score_up, scale_score, lrtbs)
        ave_w = (lrtbs_up[max_r_up, max_c_up, 0] + lrtbs_up[max_r_up, max_c_up, 2]) / self.scale_z
        ave_h = (lrtbs_up[max_r_up, max_c_up, 1] + lrtbs_up[max_r_up, max_c_up, 3]) / self.scale_z
        s_c = change(sz(ave_w, ave_h) / sz(self.size[0] * self.scale_z, self.size[1] * self.scale_z))
        r_c = change((self.size[0] / self.size[1]) / (ave_w / ave_h))
        penalty = np.exp(-(r_c * s_c - 1) * hyper.penalty_k)
        lr = penalty * cls_up[max_r_up, max_c_up] * hyper.lr
        new_width = lr * ave_w + (1 - lr) * self.size[0]
        new_height = lr * ave_h + (1 - lr) * self.size[1]
        cx = bbox_clip(new_cx, 0, img.shape[1])
        cy = bbox_clip(new_cy, 0, img.shape[0])
        width = bbox_clip(new_width, 0, img.shape[1])
        height = bbox_clip(new_height, 0, img.shape[0])
        self.center_pos = np.array([cx, cy])
        self.size = np.array([width, height])
        return [cx - width / 2, cy - height / 2, width, height], None  # the reference returns no score


# --- siamfc-pytorch ------------------------------------------------------------------------------------


def crop_and_resize(img, center, size, out_size, border_value):
    """siamfc-pytorch `ops.crop_and_resize` (constant border, bilinear), the patch HxWx3."""
    size = round(size)
    corners = np.concatenate((np.round(center - (size - 1) / 2), np.round(center - (size - 1) / 2) + size))
    corners = np.round(corners).astype(int)
    pads = np.concatenate((-corners[:2], corners[2:] - img.shape[:2]))
    npad = max(0, int(pads.max()))
    if npad > 0:
        img = cv2.copyMakeBorder(img, npad, npad, npad, npad, cv2.BORDER_CONSTANT, value=border_value)
    corners = (corners + npad).astype(int)
    patch = img[corners[0] : corners[2], corners[1] : corners[3]]
    return cv2.resize(patch, (out_size, out_size), interpolation=cv2.INTER_LINEAR)


class ReferenceSiamFC:
    """siamfc-pytorch `TrackerSiamFC` (centre as [y, x], 1-indexed boxes in and out)."""

    def __init__(self, config: TrackerConfig):
        self.config = config

    def init(self, img, box):
        crop, hyper = self.config.crop, self.config.hyper
        assert isinstance(hyper, FCHyper)
        box = np.array(
            [box[1] - 1 + (box[3] - 1) / 2, box[0] - 1 + (box[2] - 1) / 2, box[3], box[2]], dtype=np.float32
        )
        self.center, self.target_sz = box[:2], box[2:]
        self.upscale_sz = hyper.response_up * crop.score_size
        self.hann_window = np.outer(np.hanning(self.upscale_sz), np.hanning(self.upscale_sz))
        self.hann_window /= self.hann_window.sum()
        self.scale_factors = hyper.scale_step ** np.linspace(
            -(hyper.scale_num // 2), hyper.scale_num // 2, hyper.scale_num
        )
        context = crop.context_amount * np.sum(self.target_sz)
        self.z_sz = np.sqrt(np.prod(self.target_sz + context))
        self.x_sz = self.z_sz * crop.instance_size / crop.exemplar_size
        self.avg_color = np.mean(img, axis=(0, 1))
        z = crop_and_resize(img, self.center, self.z_sz, crop.exemplar_size, self.avg_color)
        return z.transpose(2, 0, 1)[np.newaxis]

    def search_crops(self, img):
        x = [
            crop_and_resize(img, self.center, self.x_sz * f, self.config.crop.instance_size, self.avg_color)
            for f in self.scale_factors
        ]
        return np.stack(x, axis=0).transpose(0, 3, 1, 2)

    def track(self, img, responses):
        crop, hyper = self.config.crop, self.config.hyper
        assert isinstance(hyper, FCHyper)
        responses = responses.squeeze(1)
        responses = np.stack(
            [
                cv2.resize(u, (self.upscale_sz, self.upscale_sz), interpolation=cv2.INTER_CUBIC)
                for u in responses
            ]
        )
        responses[: hyper.scale_num // 2] *= hyper.scale_penalty
        responses[hyper.scale_num // 2 + 1 :] *= hyper.scale_penalty
        scale_id = np.argmax(np.amax(responses, axis=(1, 2)))
        response = responses[scale_id]
        response -= response.min()
        response /= response.sum() + 1e-16
        response = (1 - hyper.window_influence) * response + hyper.window_influence * self.hann_window
        loc = np.unravel_index(response.argmax(), response.shape)
        disp_in_response = np.array(loc) - (self.upscale_sz - 1) / 2
        disp_in_instance = disp_in_response * crop.stride / hyper.response_up
        disp_in_image = disp_in_instance * self.x_sz * self.scale_factors[scale_id] / crop.instance_size
        self.center += disp_in_image
        scale = (1 - hyper.scale_lr) * 1.0 + hyper.scale_lr * self.scale_factors[scale_id]
        self.target_sz *= scale
        self.z_sz *= scale
        self.x_sz *= scale
        box = [
            self.center[1] + 1 - (self.target_sz[1] - 1) / 2,
            self.center[0] + 1 - (self.target_sz[0] - 1) / 2,
            self.target_sz[1],
            self.target_sz[0],
        ]
        return box, None  # the reference returns no score


# The reference trackers are untyped transcriptions whose `track` signatures differ by family.
REFERENCES: dict[Family, Callable[[TrackerConfig], Any]] = {
    Family.SIAMRPN: ReferenceSiamRPN,
    Family.SIAMBAN: ReferenceSiamBAN,
    Family.SIAMCAR: ReferenceSiamCAR,
    Family.SIAMFC: ReferenceSiamFC,
}


# --- the comparison ------------------------------------------------------------------------------------


def moving_noise_frames(rng: np.random.Generator) -> Iterator[np.ndarray]:
    """`FRAME_COUNT` BGR frames: one random-noise image shifted by (3, 5) px per frame."""
    base = rng.integers(0, 256, size=(FRAME_HEIGHT, FRAME_WIDTH, 3), dtype=np.uint8)
    for index in range(FRAME_COUNT):
        yield np.roll(base, (3 * index, 5 * index), axis=(0, 1))


def random_head_outputs(
    config: TrackerConfig, crops: int, rng: np.random.Generator
) -> tuple[np.ndarray, ...]:
    """Head outputs in the Contract 1 layouts: logits/deltas around 0, positive distances around 33 px."""
    s = config.crop.score_size
    if config.family is Family.SIAMRPN:
        anchors = config.head.anchor_num
        return (
            rng.normal(0, 2, (1, 2 * anchors, s, s)).astype(np.float32),
            rng.normal(0, 0.3, (1, 4 * anchors, s, s)).astype(np.float32),
        )
    if config.family is Family.SIAMFC:
        return (rng.normal(0, 1, (crops, 1, s, s)).astype(np.float32),)
    outputs: tuple[np.ndarray, ...] = (
        rng.normal(0, 2, (1, 2, s, s)).astype(np.float32),
        np.exp(rng.normal(3.5, 0.4, (1, 4, s, s))).astype(np.float32),
    )
    if config.family is Family.SIAMCAR:
        outputs += (rng.normal(0, 1, (1, 1, s, s)).astype(np.float32),)
    return outputs


def box_difference_px(reference_box, our_box) -> float:
    return float(np.max(np.abs(np.asarray(reference_box, np.float64) - np.asarray(our_box, np.float64))))


def run_sequence(tracker: str, sequence: str) -> float:
    """Track one sequence with both sides, asserting parity on every frame; the largest box difference."""
    config = get_config(tracker)
    rng = np.random.default_rng([TRACKERS.index(tracker), list(SEQUENCES).index(sequence)])
    reference = REFERENCES[config.family](config)
    init_box = SEQUENCES[sequence]
    frames = moving_noise_frames(rng)
    first = next(frames)
    state, template_request = init_track(config, first, init_box)
    reference_template = reference.init(first, init_box)
    assert np.array_equal(template_request.crop, reference_template), (
        f"{tracker}/{sequence} frame 0: template crop differs from the reference in "
        f"{np.count_nonzero(template_request.crop != reference_template)} values"
    )
    worst = 0.0
    for index, frame in enumerate(frames, start=1):
        where = f"{tracker}/{sequence} frame {index}"
        search_request = prepare_search(config, state, frame)
        reference_crops = reference.search_crops(frame)
        assert search_request.crops.shape == reference_crops.shape, (
            f"{where}: search crops {search_request.crops.shape}, reference {reference_crops.shape}"
        )
        assert np.array_equal(search_request.crops, reference_crops), (
            f"{where}: search crops differ from the reference in "
            f"{np.count_nonzero(search_request.crops != reference_crops)} values"
        )
        outputs = random_head_outputs(config, search_request.crops.shape[0], rng)
        reference_box, reference_score = reference.track(frame, *(output.copy() for output in outputs))
        state, result = finish_search(config, state, search_request, outputs)
        difference = box_difference_px(reference_box, result.bbox)
        assert difference <= BOX_TOLERANCE_PX, (
            f"{where}: box {np.round(result.bbox, 6).tolist()} vs reference "
            f"{np.round(np.asarray(reference_box, np.float64), 6).tolist()} "
            f"({difference:.3g} px apart)"
        )
        if reference_score is not None:
            assert result.score == pytest.approx(float(reference_score), abs=SCORE_TOLERANCE), (
                f"{where}: score {result.score} vs reference {float(reference_score)}"
            )
        worst = max(worst, difference)
    return worst


@pytest.fixture(scope="module", autouse=True)
def single_torch_thread() -> Iterator[None]:
    """The references' softmaxes are tiny; on a loaded machine torch's thread pool makes them 10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("sequence", list(SEQUENCES))
@pytest.mark.parametrize("tracker", TRACKERS)
def test_step_matches_reference_tracker(tracker: str, sequence: str, record_property) -> None:
    """Byte-identical crops and boxes within `BOX_TOLERANCE_PX` of the reference on every frame."""
    record_property("max_box_difference_px", run_sequence(tracker, sequence))
