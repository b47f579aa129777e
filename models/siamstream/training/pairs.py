"""Template/search pairs: which frames of which sequences, as a torch Dataset of crops and labels.

Pair `index` of epoch `e` is drawn from `numpy.random.default_rng([seed, e, index])`, so an epoch's data
do not depend on the number of workers or on the order batches are fetched, and a resumed run sees the
same pairs as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from siamstream.config import TrackerConfig
from siamstream.training.augment import TrainingCrop, sample_crop
from siamstream.training.config import Augmentation, PairSettings, TrainingConfig
from siamstream.training.objectives import Objective
from siamstream.training.sources import TrainingSequence


@dataclass(frozen=True)
class PairChoice:
    """Template frame `template_frame` of sequence `template_sequence`, search frame of `search_sequence`;
    `positive` is False for a negative pair (search from another sequence)."""

    template_sequence: int
    template_frame: int
    search_sequence: int
    search_frame: int
    positive: bool


class PairSampler:
    """Draws pairs among the usable frames of the sequences that have at least one."""

    def __init__(self, sequences: list[TrainingSequence], settings: PairSettings):
        self.sequences = sequences
        self.settings = settings
        self.usable = [np.flatnonzero(sequence.usable()) for sequence in sequences]
        self.candidates = [index for index, frames in enumerate(self.usable) if len(frames)]
        if not self.candidates:
            raise ValueError("no sequence has a usable box")

    def sample(self, rng: np.random.Generator) -> PairChoice:
        """Template frame t uniform among usable frames; search frame among usable frames with
        |s - t| <= frame_range; with probability `negative_probability` (and more than one sequence) the
        search frame is a random usable frame of another sequence instead."""
        sequence = int(rng.choice(self.candidates))
        frames = self.usable[sequence]
        template = int(rng.choice(frames))
        if len(self.candidates) > 1 and rng.random() < self.settings.negative_probability:
            other = int(rng.choice([index for index in self.candidates if index != sequence]))
            return PairChoice(sequence, template, other, int(rng.choice(self.usable[other])), False)
        near = frames[np.abs(frames - template) <= self.settings.frame_range]
        return PairChoice(sequence, template, sequence, int(rng.choice(near)), True)


def _chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


class PairDataset(Dataset):
    """`pairs_per_epoch` items per epoch, each a dict of tensors: `template` [3,Z,Z] and `search`
    [3,X,X] uint8 BGR (made float on the training device), `box_prior` [2] the target (w, h) in
    template-crop px, `search_box` [4] xyxy relative to the search-crop centre, `positive` bool, and the
    objective's labels by name."""

    def __init__(
        self,
        sequences: list[TrainingSequence],
        tracker: TrackerConfig,
        training: TrainingConfig,
        objective: Objective,
    ):
        self.sampler = PairSampler(sequences, training.pairs)
        self.tracker = tracker
        self.training = training
        self.objective = objective
        self.search_size = training.search_size or tracker.crop.instance_size
        crop = tracker.crop.model_copy(update={"instance_size": self.search_size})
        self.score_size = crop.score_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose pairs `__getitem__` returns."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.training.pairs_per_epoch

    def _crop(
        self,
        sequence_index: int,
        frame_index: int,
        out_size: int,
        augmentation: Augmentation,
        rng: np.random.Generator,
    ) -> TrainingCrop:
        """`sample_crop` of one frame of one sequence, `out_size` px, with the tracker's context."""
        source = self.sampler.sequences[sequence_index]
        crop = self.tracker.crop
        return sample_crop(
            source.frame(frame_index),
            source.box(frame_index),
            out_size,
            crop.exemplar_size,
            crop.context_amount,
            augmentation,
            rng,
        )

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.training.seed, self.epoch, index])
        choice = self.sampler.sample(rng)
        # Template first: both crops draw from `rng` in this order.
        template = self._crop(
            choice.template_sequence,
            choice.template_frame,
            self.tracker.crop.exemplar_size,
            self.training.pairs.template,
            rng,
        )
        search = self._crop(
            choice.search_sequence, choice.search_frame, self.search_size, self.training.pairs.search, rng
        )
        labels = self.objective.labels(search.box, self.score_size, choice.positive, rng)
        item = {
            "template": _chw(template.image),
            "search": _chw(search.image),
            "box_prior": torch.tensor(
                [template.box[2] - template.box[0], template.box[3] - template.box[1]], dtype=torch.float32
            ),
            "search_box": torch.tensor(search.box, dtype=torch.float32),
            "positive": torch.tensor(choice.positive),
        }
        item.update({name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in labels.items()})
        return item


def seed_worker(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: seed numpy from torch's per-worker seed (pairs themselves are seeded
    per index) and keep OpenCV to one thread per worker so workers do not oversubscribe the cores."""
    del worker_id
    np.random.seed(torch.initial_seed() % 2**32)
    cv2.setNumThreads(1)


def pair_loader(dataset: PairDataset, batch_size: int, num_workers: int, seed: int) -> DataLoader:
    """Batches in index order (the randomness is inside each item), seeded workers, last partial batch
    dropped so every step sees `batch_size` pairs (BatchNorm statistics).

    Workers are spawned, not forked: a child forked after the parent ran OpenMP or OpenCV thread pools
    can block forever on a lock held by a thread that does not exist in the child."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        worker_init_fn=seed_worker,
        generator=generator,
        drop_last=True,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
        multiprocessing_context="spawn" if num_workers > 0 else None,
    )
