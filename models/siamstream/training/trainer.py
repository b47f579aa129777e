"""The training loop: SGD with the epoch schedule, backbone unfreezing, AMP on CUDA, per-epoch
checkpoints, resume, a CSV of metrics and PNG loss curves.

Checkpoint files (`checkpoint_eNNN.pth`, NNN = epochs completed) hold `tracker` (registry name),
`config` (the full `TrackerConfig.model_dump(mode="json")`), `training` (the `TrainingConfig`), `epoch`,
`state_dict`, `optimizer`, and `scaler` (AMP), so `siamstream export --checkpoint` rebuilds the tracker
and `resume` continues exactly where the run stopped.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from siamstream.checkpoint import CheckpointError, read_checkpoint
from siamstream.config import TrackerConfig
from siamstream.nn.network import SiameseNetwork, build_network
from siamstream.training.config import TrainingConfig
from siamstream.training.objectives import build_objective
from siamstream.training.pairs import PairDataset, pair_loader
from siamstream.training.plots import plot_loss_curves
from siamstream.training.schedule import apply_backbone_schedule, epoch_lr, trainable_backbone
from siamstream.training.sources import TrainingSequence

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.csv"
CURVES_FILE = "loss_curves.png"


def checkpoint_path(out: Path, epoch: int) -> Path:
    """Where the checkpoint after `epoch` completed epochs is written."""
    return out / f"checkpoint_e{epoch:03d}.pth"


@dataclass(frozen=True)
class TrainingRun:
    """What a call to `train` did: epochs completed in total, its checkpoints, and per-step losses."""

    epochs_completed: int
    checkpoints: list[Path]
    step_losses: list[dict[str, float]]


def load_initial_weights(network: nn.Module, path: Path) -> int:
    """Copy the tensors of a checkpoint whose names and shapes fit `network` (e.g. a backbone
    pre-trained alone: bare `conv1.weight` keys are tried under `backbone.` too). Returns how many were
    loaded; raises `CheckpointError` when none fits or a matching name has another shape."""
    state = read_checkpoint(path).state_dict
    own = network.state_dict()
    if not any(key in own for key in state):
        state = {f"backbone.{key}": value for key, value in state.items()}
    misshaped = [key for key, value in state.items() if key in own and own[key].shape != value.shape]
    if misshaped:
        raise CheckpointError(f"{path}: shapes differ from the network for {', '.join(misshaped[:8])}")
    fitting = {key: value for key, value in state.items() if key in own}
    if not fitting:
        raise CheckpointError(f"{path}: no tensor name matches the network")
    own.update(fitting)
    network.load_state_dict(own)
    return len(fitting)


def _optimizer(network: SiameseNetwork, training: TrainingConfig) -> torch.optim.SGD:
    backbone_names = set(trainable_backbone(network.backbone, training.backbone))
    backbone = [p for name, p in network.backbone.named_parameters() if name in backbone_names]
    backbone_ids = {id(p) for p in network.backbone.parameters()}
    head = [p for p in network.parameters() if id(p) not in backbone_ids]
    return torch.optim.SGD(
        [{"params": backbone, "name": "backbone"}, {"params": head, "name": "head"}],
        lr=training.lr.warmup_start_lr,
        momentum=training.momentum,
        weight_decay=training.weight_decay,
    )


def _set_lr(optimizer: torch.optim.Optimizer, training: TrainingConfig, epoch: int) -> float:
    lr = epoch_lr(training.lr, epoch, training.epochs)
    for group in optimizer.param_groups:
        group["lr"] = lr * (training.backbone.lr_multiplier if group["name"] == "backbone" else 1.0)
    return lr


def _save(path: Path, payload: dict[str, Any]) -> None:
    partial = path.with_suffix(".partial")
    torch.save(payload, partial)
    partial.replace(path)


class MetricsLog:
    """Appends one CSV row per step: epoch, step, lr, pairs_per_s and each loss."""

    def __init__(self, path: Path):
        self.path = path
        self.columns: list[str] | None = None
        if path.is_file():
            with path.open() as stream:
                self.columns = next(csv.reader(stream), None)

    def write(self, row: dict[str, float]) -> None:
        if self.columns is None:
            self.columns = list(row)
            with self.path.open("w", newline="") as stream:
                csv.writer(stream).writerow(self.columns)
        with self.path.open("a", newline="") as stream:
            csv.DictWriter(stream, self.columns).writerow(row)


def train(
    tracker: TrackerConfig,
    training: TrainingConfig,
    sequences: Sequence[TrainingSequence],
    out: Path,
    device: str = "cpu",
    resume: Path | None = None,
    init: Path | None = None,
    progress: bool = True,
    on_step: Callable[[dict[str, float]], None] | None = None,
) -> TrainingRun:
    """Train `tracker`'s network on pairs from `sequences` for `training.epochs` epochs (counted from 0,
    including those a resumed checkpoint already completed), writing into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    if training.pairs_per_epoch < training.batch_size:
        raise ValueError("pairs_per_epoch must be at least batch_size")
    torch.manual_seed(training.seed)
    network = build_network(tracker).to(device)
    objective = build_objective(tracker, training)
    optimizer = _optimizer(network, training)
    use_amp = training.amp and torch.device(device).type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    start_epoch = 0
    if resume is not None:
        state = torch.load(resume, map_location=device, weights_only=True)
        if state.get("tracker") != tracker.name:
            raise CheckpointError(f"{resume} holds {state.get('tracker')!r}, not {tracker.name!r}")
        network.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        if use_amp and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_epoch = int(state["epoch"])
    elif init is not None:
        log.info("initial weights: %d tensors from %s", load_initial_weights(network, init), init)
    dataset = PairDataset(list(sequences), tracker, training, objective)
    loader = pair_loader(dataset, training.batch_size, training.num_workers, training.seed)
    metrics = MetricsLog(out / METRICS_FILE)
    checkpoints: list[Path] = []
    step_losses: list[dict[str, float]] = []
    steps_per_epoch = len(loader)
    for epoch in range(start_epoch, training.epochs):
        torch.manual_seed(training.seed + epoch)
        dataset.set_epoch(epoch)
        network.train()
        apply_backbone_schedule(network.backbone, training.backbone, epoch)
        if not any(p.requires_grad for p in network.parameters()):
            raise ValueError(
                f"epoch {epoch + 1}: nothing to train (the head has no parameters, backbone frozen)"
            )
        lr = _set_lr(optimizer, training, epoch)
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{training.epochs}", unit="step", disable=not progress)
        started = time.perf_counter()
        for index, batch in enumerate(bar):
            batch = {name: value.to(device, non_blocking=True) for name, value in batch.items()}
            template, search = batch["template"].float(), batch["search"].float()
            autocast = torch.autocast("cuda", dtype=torch.float16) if use_amp else contextlib.nullcontext()
            with autocast:
                outputs = objective.outputs(network, template, search, batch["box_prior"])
            _check_score_size(outputs, dataset.score_size)
            losses = objective.losses(outputs, batch)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(losses["total"]).backward()
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(
                [p for p in network.parameters() if p.grad is not None], training.grad_clip
            )
            scaler.step(optimizer)
            scaler.update()
            elapsed = time.perf_counter() - started
            row = {"epoch": epoch + 1, "step": epoch * steps_per_epoch + index + 1, "lr": lr}
            row.update({name: float(value.detach()) for name, value in losses.items()})
            row["pairs_per_s"] = (index + 1) * training.batch_size / max(elapsed, 1e-9)
            metrics.write(row)
            step_losses.append(row)
            bar.set_postfix(loss=f"{row['total']:.3f}")
            if on_step is not None:
                on_step(row)
        path = checkpoint_path(out, epoch + 1)
        _save(
            path,
            {
                "tracker": tracker.name,
                "config": tracker.model_dump(mode="json"),
                "training": training.model_dump(mode="json"),
                "epoch": epoch + 1,
                "state_dict": network.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict() if use_amp else {},
            },
        )
        checkpoints.append(path)
        plot_loss_curves(out / METRICS_FILE, out / CURVES_FILE)
        log.info("epoch %d: checkpoint %s", epoch + 1, path)
    return TrainingRun(epochs_completed=training.epochs, checkpoints=checkpoints, step_losses=step_losses)


def _check_score_size(outputs: dict[str, torch.Tensor], score_size: int) -> None:
    first = next(iter(outputs.values()))
    if first.size(-1) != score_size:
        raise ValueError(f"the network gives {first.size(-1)}x{first.size(-1)} maps, labels are {score_size}")
