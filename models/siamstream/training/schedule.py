"""Learning rate per epoch and the backbone freeze/unfreeze schedule."""

from __future__ import annotations

from torch import nn

from siamstream.training.config import BackboneTraining, LRSchedule


def epoch_lr(schedule: LRSchedule, epoch: int, epochs: int) -> float:
    """Head learning rate of `epoch` (0-based) of `epochs`.

    Warm-up epochs e < W: warmup_start_lr * (base_lr / warmup_start_lr)^(e / W) (geometric, pysot's
    warm-up). After it, with k = e - W and K = epochs - W: log decay base_lr * (end_lr / base_lr)^(k / (K-1))
    (base_lr when K = 1), step decay base_lr * gamma^(k // step_epochs), or milestone decay
    base_lr * gamma^(number of milestones <= k).
    """
    warmup = schedule.warmup_epochs
    if epoch < warmup:
        return schedule.warmup_start_lr * (schedule.base_lr / schedule.warmup_start_lr) ** (epoch / warmup)
    step, steps = epoch - warmup, epochs - warmup
    if schedule.decay == "step":
        return schedule.base_lr * schedule.gamma ** (step // schedule.step_epochs)
    if schedule.decay == "milestones":
        return schedule.base_lr * schedule.gamma ** sum(step >= m for m in schedule.milestones)
    if steps <= 1:
        return schedule.base_lr
    return schedule.base_lr * (schedule.end_lr / schedule.base_lr) ** (step / (steps - 1))


def trainable_backbone(backbone: nn.Module, settings: BackboneTraining) -> list[str]:
    """Names of the backbone parameters trained once unfrozen (prefix match on `settings.layers`)."""
    names = [name for name, _ in backbone.named_parameters()]
    if not settings.layers:
        return names
    chosen = [name for name in names if any(name == p or name.startswith(p + ".") for p in settings.layers)]
    if not chosen:
        raise ValueError(f"backbone layers {settings.layers} match no parameter (names start {names[0]!r})")
    return chosen


def apply_backbone_schedule(backbone: nn.Module, settings: BackboneTraining, epoch: int) -> int:
    """Freeze or unfreeze backbone parameters for `epoch`, and put frozen modules' BatchNorm in eval
    mode (pysot keeps the statistics of frozen layers). Returns the number of trainable parameters.

    Call after `network.train()`."""
    unfrozen = set(trainable_backbone(backbone, settings)) if epoch >= settings.unfreeze_epoch else set()
    for name, parameter in backbone.named_parameters():
        parameter.requires_grad_(name in unfrozen)
    for module in backbone.modules():
        own = list(module.parameters(recurse=False))
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and own and not own[0].requires_grad:
            module.eval()
    return sum(p.numel() for p in backbone.parameters() if p.requires_grad)
