"""The one inference interface every backend implements (docs/architecture.md, contract 5).

Tensors follow architecture.md Contract 1: crops are BGR uint8 `[B,3,S,S]` (0..255, converted inside the
models), `box_prior` is float32 `[B,2]` (target `w, h` in template-crop pixels), the template embedding is
float32 `[B,D]`, and the search outputs are float32 arrays, batch first, in the order of the package's
`search_outputs`. Row `i` of every output belongs to row `i` of the inputs, whatever the backend batched.

An update-capable package (architecture.md, "Template update") has a search stage that also returns the
search features float32 `[B, L*C, F, F]`, and a third stage, the template update. The features are handed
only to callers that ask for them, so sessions without the update do not pay for their transfer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import StrEnum

import numpy as np

Tensors = tuple[np.ndarray, ...]
SearchOutputs = Tensors


class Stage(StrEnum):
    """The model stages of a tracker package; the values name them in metrics and logs."""

    TEMPLATE = "template"
    SEARCH = "search"
    UPDATE = "update"


class InferenceError(Exception):
    """An inference call failed for a reason other than the ones below (bad tensors, model error)."""


class BackendUnavailable(InferenceError):
    """The model server cannot be reached or did not answer within the request timeout."""


class UnknownTracker(InferenceError):
    """No model is loaded for the requested tracker name."""


class InferenceBackend(ABC):
    """Runs the template, search and update stages of named trackers; switching backends is configuration.

    The stage calls are defined here once, in the tensors of Contract 1; a backend implements `run_stage`
    (one stage of one tracker, whatever it batches or transfers), `ready` and `close`.
    """

    async def template(self, tracker: str, crop_z: np.ndarray, box_prior: np.ndarray) -> np.ndarray:
        """Embed template crops: uint8 `[B,3,Z,Z]` and float32 `[B,2]` -> float32 `[B,D]`."""
        (embedding,) = await self.run_stage(tracker, Stage.TEMPLATE, (crop_z, box_prior))
        return embedding

    async def search(
        self,
        tracker: str,
        template_embedding: np.ndarray,
        crop_x: np.ndarray,
        *,
        search_features: bool = False,
    ) -> SearchOutputs:
        """Run the search stage: float32 `[B,D]` and uint8 `[B,3,X,X]` -> float32 head outputs `[B,...]`.

        With `search_features` the search features float32 `[B,L*C,F,F]` follow as one output more
        (update-capable packages only; InferenceError otherwise).
        """
        inputs = (template_embedding, crop_x)
        return await self.run_stage(tracker, Stage.SEARCH, inputs, search_features=search_features)

    async def update(
        self,
        tracker: str,
        template_embedding: np.ndarray,
        search_features: np.ndarray,
        roi: np.ndarray,
        rate: np.ndarray,
    ) -> np.ndarray:
        """Run the template update stage: float32 `[B,D]` embeddings, `[B,L*C,F,F]` search features,
        `[B,4]` regions (x1, y1, x2, y2 in search-crop pixels from the crop centre) and `[B]` rates ->
        the blended float32 `[B,D]` embeddings. InferenceError for a package without the update stage."""
        inputs = (template_embedding, search_features, roi, rate)
        (embedding,) = await self.run_stage(tracker, Stage.UPDATE, inputs)
        return embedding

    @abstractmethod
    async def run_stage(
        self, tracker: str, stage: Stage, inputs: Tensors, *, search_features: bool = False
    ) -> Tensors:
        """Run `stage` of `tracker` on its inputs, in the order and shapes of the calls above.

        Returns the stage's outputs: the embedding alone for the template and update stages, the head
        outputs (then the search features when `search_features`) for the search stage.
        """

    @abstractmethod
    async def ready(self) -> bool:
        """True when the backend can serve requests now."""

    @abstractmethod
    async def close(self) -> None:
        """Release threads, channels and shared memory; the backend is unusable afterwards."""
