"""In-process execution of a tracker package's stages on numpy inputs: its TorchScript files, or its
AOTInductor-compiled stages where the package has them and they fit this machine (`siamstream.compiled`)."""

from __future__ import annotations

import numpy as np
import torch

from siamstream.compiled import CompiledStages, load_compiled_stages
from siamstream.package import TrackerPackage


class PackageRunner:
    """Runs the template and search stages of one package, and `update.pt` in update-capable packages;
    implements the offline `StageRunner` (and `TemplateUpdater` when the package has `update.pt`).

    The template and search stages run compiled where the package holds compiled stages that fit this
    machine, unless `compiled` is False; otherwise, and always for `update.pt`, the TorchScript files run.
    `stage_form` says which. Inputs and outputs are numpy arrays in the shapes of contract 1
    (docs/architecture.md); the crops stay uint8 until the model converts them.
    """

    def __init__(self, package: TrackerPackage, device: str = "cpu", *, compiled: bool = True) -> None:
        self.package = package
        self.device = torch.device(device)
        self._template = torch.jit.load(str(package.template_path), map_location=self.device).eval()
        self._search = torch.jit.load(str(package.search_path), map_location=self.device).eval()
        self._update = None
        if package.meta.template_update:
            self._update = torch.jit.load(str(package.update_path), map_location=self.device).eval()
        self._compiled: CompiledStages | None = None
        self.stage_form = "TorchScript (compiled stages not asked for)"
        if compiled:
            self._compiled, self.stage_form = load_compiled_stages(package, self.device)

    def template(self, crop_z: np.ndarray, box_prior: np.ndarray) -> np.ndarray:
        """Template embedding float32[B,D] of uint8 crops [B,3,Z,Z] and target sizes [B,2] (crop px)."""
        inputs = self._tensor(crop_z), self._tensor(box_prior)
        with torch.inference_mode():
            if self._compiled is not None and self._compiled.serves_template(*inputs):
                embedding = self._compiled.template(*inputs)
            else:
                embedding = self._template(*inputs)
        return embedding.cpu().numpy()

    def search(self, template_embedding: np.ndarray, crop_x: np.ndarray) -> tuple[np.ndarray, ...]:
        """Head outputs for uint8 search crops [B,3,X,X], row b against template row b."""
        inputs = self._tensor(template_embedding), self._tensor(crop_x)
        with torch.inference_mode():
            if self._compiled is not None and self._compiled.serves_search(*inputs):
                outputs = self._compiled.search(*inputs)
            else:
                outputs = self._search(*inputs)
        return tuple(output.cpu().numpy() for output in outputs)

    def update(
        self, template_embedding: np.ndarray, search_features: np.ndarray, roi: np.ndarray, rate: np.ndarray
    ) -> np.ndarray:
        """New template embeddings float32[B,D]: `rate` [B] blends in the candidate RoI-Aligned from the
        search features [B,L*C,F,F] over `roi` [B,4] (x1, y1, x2, y2, search-crop px from the crop centre)."""
        if self._update is None:
            raise ValueError(f"package {self.package.root} has no template update stage")
        with torch.inference_mode():
            embedding = self._update(
                self._tensor(template_embedding),
                self._tensor(search_features),
                self._tensor(roi),
                self._tensor(rate),
            )
        return embedding.cpu().numpy()

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device)
