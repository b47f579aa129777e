"""The result of evaluating one tracker on a set of sequences: per-sequence rows and overall means.

Overall figures are means over sequences (each sequence weighs the same, as in pysot's result table),
not over frames. Overall speed is total frames over total tracking time.
"""

from __future__ import annotations

import json
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from siamstream.evaluation.metrics import SequenceMetrics

Curve = Literal["success", "precision", "norm_precision"]


class SequenceResult(BaseModel):
    """One sequence's row: scores in [0, 1], curves over the thresholds of `evaluation.metrics`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    frames: int = Field(description="Frames in the sequence.")
    scored_frames: int = Field(description="Frames with valid, visible ground truth, the ones scored.")
    success_auc: float
    precision: float = Field(description="Fraction of scored frames with centre error <= 20 px.")
    norm_precision: float = Field(description="Fraction of scored frames with normalised error <= 0.2.")
    fps: float | None = Field(default=None, description="Frames tracked per second, when measured.")
    success_curve: list[float]
    precision_curve: list[float]
    norm_precision_curve: list[float]

    @classmethod
    def from_metrics(
        cls, name: str, frames: int, metrics: SequenceMetrics, fps: float | None = None
    ) -> SequenceResult:
        return cls(
            name=name,
            frames=frames,
            scored_frames=metrics.frames,
            success_auc=metrics.success_auc,
            precision=metrics.precision,
            norm_precision=metrics.norm_precision,
            fps=fps,
            success_curve=metrics.success_curve.tolist(),
            precision_curve=metrics.precision_curve.tolist(),
            norm_precision_curve=metrics.norm_precision_curve.tolist(),
        )


class EvaluationReport(BaseModel):
    """OPE results of one tracker: one row per sequence, in evaluation order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tracker: str
    sequences: list[SequenceResult] = Field(min_length=1)

    @property
    def success_auc(self) -> float:
        return float(np.mean([row.success_auc for row in self.sequences]))

    @property
    def precision(self) -> float:
        return float(np.mean([row.precision for row in self.sequences]))

    @property
    def norm_precision(self) -> float:
        return float(np.mean([row.norm_precision for row in self.sequences]))

    @property
    def fps(self) -> float | None:
        """Total frames over total tracking time; None unless every sequence has a measured speed."""
        if any(row.fps is None for row in self.sequences):
            return None
        seconds = sum(row.frames / row.fps for row in self.sequences)
        return sum(row.frames for row in self.sequences) / seconds

    def score(self, curve: Curve) -> float:
        """The figure that summarises a curve: success AUC, precision at 20 px, or at 0.2 normalised."""
        if curve == "success":
            return self.success_auc
        return self.precision if curve == "precision" else self.norm_precision

    def mean_curve(self, curve: Curve) -> np.ndarray:
        """Mean over sequences of one curve (the curve a plot of the whole benchmark shows)."""
        if curve not in ("success", "precision", "norm_precision"):
            raise ValueError(f"unknown curve {curve!r}")
        return np.mean([getattr(row, f"{curve}_curve") for row in self.sequences], axis=0)

    def to_json(self) -> str:
        """The report as JSON: tracker, overall means, and every row with its curves."""
        overall = {
            "sequences": len(self.sequences),
            "success_auc": self.success_auc,
            "precision": self.precision,
            "norm_precision": self.norm_precision,
            "fps": self.fps,
        }
        rows = [row.model_dump() for row in self.sequences]
        return json.dumps({"tracker": self.tracker, "overall": overall, "sequences": rows}, indent=2)

    def to_text(self) -> str:
        """A fixed-width table: one line per sequence, then the overall means."""
        width = max(len("Overall"), *(len(row.name) for row in self.sequences))
        header = f"{'Sequence':<{width}}  Frames  Success  Prec@20  NPrec@0.2      FPS"
        rule = "-" * len(header)

        def line(name: str, frames: int, scores: SequenceResult | EvaluationReport) -> str:
            speed = "-" if scores.fps is None else f"{scores.fps:.1f}"
            return (
                f"{name:<{width}}  {frames:>6}  {scores.success_auc:>7.3f}  {scores.precision:>7.3f}  "
                f"{scores.norm_precision:>9.3f}  {speed:>7}"
            )

        lines = [f"Tracker: {self.tracker}", header, rule]
        lines += [line(row.name, row.frames, row) for row in self.sequences]
        lines += [rule, line("Overall", sum(row.frames for row in self.sequences), self)]
        return "\n".join(lines)
