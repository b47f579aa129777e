"""Offline training of the Siamese trackers: data sources, pairs and crops, labels, losses, objectives
and the training loop behind `siamstream train`."""

from siamstream.training import objectives_dcf_can  # noqa: F401  (registers the dcf and can objectives)
from siamstream.training.config import TrainingConfig, default_training_config, with_schedule
from siamstream.training.objectives import Objective, build_objective, list_objectives, register_objective
from siamstream.training.sources import TrainingSequence, open_training_data
from siamstream.training.trainer import TrainingRun, checkpoint_path, train

__all__ = [
    "Objective",
    "TrainingConfig",
    "TrainingRun",
    "TrainingSequence",
    "build_objective",
    "checkpoint_path",
    "default_training_config",
    "list_objectives",
    "open_training_data",
    "register_objective",
    "train",
    "with_schedule",
]
