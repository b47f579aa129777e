"""Mechanism probes: what each paper says its component does to the network's maps, measured on the
study's trained arms.

A probe runs an arm's trained network eagerly (its config, the weights of its last training checkpoint)
on the held-out suite with oracle crops: the template from frame 0's true box and, every `PROBE_EVERY`
frames, the search region centred on that frame's true box, as the tracker crops it when it is on
target. Every arm then sees the same pixels, so the maps differ only by the network.

On the foreground score map (cells mapped to frame pixels by the crop geometry, a cell counted inside a
box when its centre is; the background is what lies outside the target's box doubled about its centre,
so that the ring of cells next to the target, which any smooth map scores high, is neither):
- `target_score`: the highest score on a cell inside the target's box (the cell nearest the centre when
  the box covers none);
- `hard_negative`: the highest score on the background, `separation` the difference (SiamMargin: a
  large margin separates the target from the hard negatives);
- `background_energy`: the background's share of the map's total score (ACM: less energy on the
  background);
- `distractor_gap` (look-alike sequences): target score minus the highest score inside a look-alike's
  box (ACM: target-vs-distractor similarity), undefined when no look-alike is in the crop.
DCFNet, for each correlation-fusion stage k (`stage<k>_contrast`): the channel mean of the response the
fusion adds to the search map, inside the target's box minus outside, in units of the map's standard
deviation (the paper: the fusion highlights the target). SiamCAN (`attention_contrast`): the self-spatial
attention of the classification branch inside the box minus outside, averaged over levels; `attention_maps`
draws it next to the crop and the score map.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from siamstream.checkpoint import load_weights, read_checkpoint
from siamstream.config import TrackerConfig
from siamstream.data.synthetic import SyntheticSequence
from siamstream.nn.attention import SpatialAttention
from siamstream.nn.network import SiameseNetwork, build_network
from siamstream.nn.staged_correlation import CorrelationFusion
from siamstream.study.plan import StudyPlan
from siamstream.study.runner import Task, held_out_suite, stratum_of
from siamstream.tracking.rpn import foreground_scores
from siamstream.tracking.step import init_track, prepare_search

PROBES_FILE = "probes.json"
PROBE_EVERY = 10
ATTENTION_EXAMPLES = 4


class MapRecorder:
    """Forward hooks that keep, per call, the DCFNet fusion responses and the SiamCAN spatial attentions."""

    def __init__(self, network: nn.Module):
        self.fusions: dict[str, Tensor] = {}
        self.attentions: dict[str, Tensor] = {}
        for name, module in network.named_modules():
            if isinstance(module, CorrelationFusion):
                module.register_forward_hook(self._fusion_hook(name))
            elif isinstance(module, SpatialAttention) and ".cls." in f".{name}.":
                module.register_forward_hook(self._attention_hook(name))

    def _fusion_hook(self, name: str) -> Callable[[nn.Module, tuple[Tensor, ...], Tensor], None]:
        def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            self.fusions[name] = (output - inputs[0]).detach().mean(1)[0]  # the added response, channel mean

        return hook

    def _attention_hook(self, name: str) -> Callable[[SpatialAttention, tuple[Tensor, ...], Tensor], None]:
        def hook(module: SpatialAttention, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            self.attentions[name] = module.weights(inputs[0]).detach()[0, 0]

        return hook


def trained_network(plan: StudyPlan, task: Task, out: Path) -> tuple[TrackerConfig, SiameseNetwork]:
    """An arm's config and its network with the weights of the arm's last training checkpoint."""
    from siamstream.training.trainer import checkpoint_path

    arm = plan.arm(task.arm)
    config = arm.tracker_config()
    last = checkpoint_path(task.folder(out) / "train", plan.training_config(arm, task.seed).epochs)
    network = build_network(config)
    load_weights(network, read_checkpoint(last).state_dict, config.name)
    return config, network.eval()


def cell_centres(score_size: int, stride: int, scale_z: float, centre: tuple[float, float]) -> np.ndarray:
    """Frame-pixel (x, y) of every score cell's centre, [S, S, 2]: cell j sits (j - (S-1)/2) * stride
    crop pixels from the crop centre, one crop pixel being 1/scale_z frame pixels."""
    offsets = (np.arange(score_size) - (score_size - 1) / 2) * stride / scale_z
    xs, ys = np.meshgrid(centre[0] + offsets, centre[1] + offsets)
    return np.stack([xs, ys], axis=-1)


def inside(cells: np.ndarray, box: np.ndarray) -> np.ndarray:
    """[S, S] bool: cell centres inside the xywh box."""
    x, y, w, h = box
    return (cells[..., 0] >= x) & (cells[..., 0] <= x + w) & (cells[..., 1] >= y) & (cells[..., 1] <= y + h)


def score_map(outputs: tuple[Tensor, ...]) -> np.ndarray:
    """Foreground probability per cell [S, S]: the softmax of `cls` ([bg x A, fg x A]), best anchor."""
    cls = outputs[0][0].detach().float().numpy()
    anchors = cls.shape[0] // 2
    return foreground_scores(cls).reshape(anchors, *cls.shape[1:]).max(0)


def doubled(box: np.ndarray) -> np.ndarray:
    """The xywh box twice as wide and high about the same centre."""
    x, y, w, h = box
    return np.array([x - w / 2, y - h / 2, 2 * w, 2 * h])


def score_probe(
    scores: np.ndarray, target: np.ndarray, background: np.ndarray, distractor: np.ndarray | None
) -> dict[str, float]:
    """The score-map metrics of one frame (module doc) from [S, S] scores and masks."""
    if not target.any():  # a box smaller than a cell: its nearest cell
        target = np.zeros_like(target)
        middle = scores.shape[0] // 2
        target[middle, middle] = True
    target_score = float(scores[target].max())
    hard_negative = float(scores[background].max()) if background.any() else math.nan
    gap = math.nan
    if distractor is not None and (distractor & ~target).any():
        gap = target_score - float(scores[distractor & ~target].max())
    return {
        "target_score": target_score,
        "hard_negative": hard_negative,
        "separation": target_score - hard_negative,
        "background_energy": float(scores[background].sum() / max(scores.sum(), 1e-12)),
        "distractor_gap": gap,
    }


def map_contrast(values: np.ndarray, mask: np.ndarray) -> float:
    """Mean inside the mask minus mean outside, in units of the map's standard deviation."""
    spread = float(values.std())
    if not mask.any() or mask.all() or spread == 0.0:
        return math.nan
    return float((values[mask].mean() - values[~mask].mean()) / spread)


def resized_mask(
    box: np.ndarray, side: int, crop_side: int, scale_z: float, centre: tuple[float, float]
) -> np.ndarray:
    """[side, side] mask of a feature map spanning the whole search crop (cell centres evenly spaced)."""
    offsets = ((np.arange(side) + 0.5) * crop_side / side - crop_side / 2) / scale_z
    xs, ys = np.meshgrid(centre[0] + offsets, centre[1] + offsets)
    return inside(np.stack([xs, ys], axis=-1), box)


@dataclass(frozen=True)
class FrameProbe:
    """One probed frame: its metrics, the search crop (BGR uint8 HxWx3) and the maps behind them."""

    metrics: dict[str, float]
    crop: np.ndarray
    scores: np.ndarray
    attentions: dict[str, np.ndarray]


class SequenceProbe:
    """A trained network with its hooks and one sequence's template, probing frames of that sequence."""

    def __init__(
        self,
        config: TrackerConfig,
        network: SiameseNetwork,
        recorder: MapRecorder,
        sequence: SyntheticSequence,
    ):
        self.config, self.network, self.recorder, self.sequence = config, network, recorder, sequence
        self.state, template = init_track(
            config, sequence.frame(0), tuple(float(v) for v in sequence.init_box)
        )
        with torch.no_grad():
            self.embedding = network.template_embedding(
                torch.from_numpy(template.crop).float(), torch.from_numpy(template.box_prior)
            )

    @torch.no_grad()
    def frame(self, index: int) -> FrameProbe:
        sequence = self.sequence
        box = sequence.ground_truth[index]
        centre = (float(box[0] + box[2] / 2), float(box[1] + box[3] / 2))
        on_target = self.state.model_copy(update={"cx": centre[0], "cy": centre[1], "w": box[2], "h": box[3]})
        request = prepare_search(self.config, on_target, sequence.frame(index))
        crop = torch.from_numpy(request.crops).float()
        scores = score_map(self.network.search_outputs(self.embedding, crop))
        cells = cell_centres(scores.shape[0], self.config.crop.stride, request.scale_z, centre)
        target = inside(cells, box)
        distractor = None
        if len(sequence.distractor_boxes):
            distractor = np.any([inside(cells, path[index]) for path in sequence.distractor_boxes], axis=0)
        metrics = score_probe(scores, target, ~inside(cells, doubled(box)), distractor)
        for name, response in self.recorder.fusions.items():
            mask = resized_mask(box, response.shape[-1], crop.shape[-1], request.scale_z, centre)
            metrics[f"stage{name[-1]}_contrast"] = map_contrast(response.numpy(), mask)
        attentions = {name: map.numpy() for name, map in self.recorder.attentions.items()}
        if attentions:
            metrics["attention_contrast"] = _nanmean([map_contrast(a, target) for a in attentions.values()])
        return FrameProbe(metrics, request.crops[0].transpose(1, 2, 0), scores, attentions)


def probe_sequence(
    config: TrackerConfig, network: SiameseNetwork, recorder: MapRecorder, sequence: SyntheticSequence
) -> dict[str, Any]:
    """The probe metrics of one sequence, each averaged over its probe frames (NaN where undefined)."""
    probe = SequenceProbe(config, network, recorder, sequence)
    rows = [probe.frame(index).metrics for index in range(PROBE_EVERY, len(sequence), PROBE_EVERY)]
    means = {key: _nanmean([row[key] for row in rows]) for key in rows[0]}
    return {"sequence": sequence.name, "stratum": stratum_of(sequence.name), **means}


def _nanmean(values: list[float]) -> float:
    finite = [value for value in values if not math.isnan(value)]
    return float(np.mean(finite)) if finite else math.nan


def run_probes(plan: StudyPlan, task: Task, out: Path) -> dict[str, Any]:
    """Probe one trained (arm, seed) over the held-out suite and write `probes.json` beside its results."""
    config, network = trained_network(plan, task, out)
    recorder = MapRecorder(network)
    sequences = [probe_sequence(config, network, recorder, sequence) for sequence in held_out_suite(plan)]
    summary = {"arm": task.arm, "seed": task.seed, "probe_every": PROBE_EVERY, "sequences": sequences}
    path = task.folder(out) / PROBES_FILE
    path.write_text(json.dumps(summary, allow_nan=True) + "\n")
    return summary


def attention_figure(
    plan: StudyPlan, task: Task, out: Path, path: Path, stratum: str = "distractors"
) -> Path:
    """SiamCAN's self-spatial attention as images: for the first sequences of `stratum`, at their middle
    frame, the search crop, the score map and the classification branch's attention of each level."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    config, network = trained_network(plan, task, out)
    recorder = MapRecorder(network)
    sequences = [s for s in held_out_suite(plan) if stratum_of(s.name) == stratum][:ATTENTION_EXAMPLES]
    probes = [SequenceProbe(config, network, recorder, s).frame(len(s) // 2) for s in sequences]
    levels = sorted(probes[0].attentions)
    if not levels:
        raise ValueError(f"{task.arm} has no self-spatial attention to draw")
    columns = 2 + len(levels)
    figure, axes = pyplot.subplots(
        len(probes), columns, figsize=(2.2 * columns, 2.2 * len(probes)), squeeze=False
    )
    for row, sequence, probe in zip(axes, sequences, probes, strict=True):
        row[0].imshow(probe.crop[..., ::-1])
        row[0].set_ylabel(sequence.name, fontsize=8)
        row[1].imshow(probe.scores, cmap="viridis", vmin=0.0, vmax=1.0)
        for axis, level in zip(row[2:], levels, strict=True):
            axis.imshow(probe.attentions[level], cmap="magma", vmin=0.0, vmax=1.0)
        for axis in row:
            axis.set_xticks([])
            axis.set_yticks([])
    titles = ["search crop", "score map"] + [f"attention {level.split('.')[1]}" for level in levels]
    for axis, title in zip(axes[0], titles, strict=True):
        axis.set_title(title, fontsize=8)
    figure.suptitle(f"{task.arm} seed {task.seed}: target at the crop centre", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return path
