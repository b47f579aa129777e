"""`RecordingRunner`: a package's stages passed through unchanged, recording what each call was given.

The test double for "how many calls, of how many rows, on which crop side" (batching across targets, the
second search, grown and lost-search crops), shared by the library and service tests.
"""

from __future__ import annotations

import numpy as np

from siamstream.runner import PackageRunner


class RecordingRunner:
    """`runner`'s template, search and update stages, recording per stage in call order: the rows of each
    template and update call, and `(rows, crop side)` of each search call (side in crop pixels)."""

    def __init__(self, runner: PackageRunner) -> None:
        self.runner = runner
        self.calls: dict[str, list] = {"template": [], "search": [], "update": []}

    @property
    def crop_sides(self) -> list[int]:
        """The crop side of every search call, in call order."""
        return [side for _, side in self.calls["search"]]

    def template(self, crop_z: np.ndarray, box_prior: np.ndarray) -> np.ndarray:
        self.calls["template"].append(crop_z.shape[0])
        return self.runner.template(crop_z, box_prior)

    def search(self, template_embedding: np.ndarray, crop_x: np.ndarray) -> tuple[np.ndarray, ...]:
        self.calls["search"].append((crop_x.shape[0], crop_x.shape[-1]))
        return self.runner.search(template_embedding, crop_x)

    def update(
        self, template_embedding: np.ndarray, search_features: np.ndarray, roi: np.ndarray, rate: np.ndarray
    ) -> np.ndarray:
        self.calls["update"].append(template_embedding.shape[0])
        return self.runner.update(template_embedding, search_features, roi, rate)
