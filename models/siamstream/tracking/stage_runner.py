"""The network stages the in-process trackers drive (Contract 1), batch first."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


class StageRunner(Protocol):
    """The two network stages of Contract 1, batch first."""

    def template(self, crop_z: np.ndarray, box_prior: np.ndarray) -> np.ndarray:
        """uint8 [B, 3, Z, Z] crops and float32 [B, 2] box priors -> float32 [B, D] template embeddings."""
        ...

    def search(self, template_embedding: np.ndarray, crop_x: np.ndarray) -> tuple[np.ndarray, ...]:
        """float32 [B, D] embeddings and uint8 [B, 3, X, X] crops -> the family's head outputs [B, ...]."""
        ...


@runtime_checkable
class TemplateUpdater(Protocol):
    """The template update stage of an update-capable package (`update.pt`)."""

    def update(
        self, template_embedding: np.ndarray, search_features: np.ndarray, roi: np.ndarray, rate: np.ndarray
    ) -> np.ndarray:
        """float32 [B, D] embeddings, [B, L*C, F, F] search features, [B, 4] regions (search-crop px from
        the crop centre) and [B] rates -> the blended float32 [B, D] embeddings."""
        ...
