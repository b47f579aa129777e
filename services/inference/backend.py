"""The one inference interface every backend implements (DESIGN contract 5).

Tensors follow architecture.md Contract 1: crops are BGR uint8 `[B,3,S,S]` (0..255, converted inside the
models), `box_prior` is float32 `[B,2]` (target `w, h` in template-crop pixels), the template embedding is
float32 `[B,D]`, and the search outputs are float32 arrays, batch first, in the order of the package's
`search_outputs`. Row `i` of every output belongs to row `i` of the inputs, whatever the backend batched.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

SearchOutputs = tuple[np.ndarray, ...]


class InferenceError(Exception):
    """An inference call failed for a reason other than the ones below (bad tensors, model error)."""


class BackendUnavailable(InferenceError):
    """The model server cannot be reached or did not answer within the request timeout."""


class UnknownTracker(InferenceError):
    """No model is loaded for the requested tracker name."""


@runtime_checkable
class InferenceBackend(Protocol):
    """Runs the template and search stages of named trackers; switching backends is configuration."""

    async def template(self, tracker: str, crop_z: np.ndarray, box_prior: np.ndarray) -> np.ndarray:
        """Embed template crops: uint8 `[B,3,Z,Z]` and float32 `[B,2]` -> float32 `[B,D]`."""
        ...

    async def search(self, tracker: str, template_embedding: np.ndarray, crop_x: np.ndarray) -> SearchOutputs:
        """Run the search stage: float32 `[B,D]` and uint8 `[B,3,X,X]` -> float32 head outputs `[B,...]`."""
        ...

    async def ready(self) -> bool:
        """True when the backend can serve requests now."""
        ...

    async def close(self) -> None:
        """Release threads, channels and shared memory; the backend is unusable afterwards."""
        ...
