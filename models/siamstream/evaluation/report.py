"""The result of evaluating one tracker on a set of sequences: per-sequence rows and overall figures.

OPE figures (success AUC, precision, normalised precision) are means over sequences, each sequence
weighing the same, as in pysot's result table; per-attribute figures are the same means over the
sequences with that attribute (pysot's per-attribute plots). GOT-10k figures (AO, SR0.50, SR0.75) pool
the scored frames of all sequences, as the GOT-10k toolkit does (`evaluation.got10k`). Overall speed is
total frames over total tracking time, or for saved results with per-frame times the toolkit's mean of
1 / t over the timed frames of all sequences pooled.

Sequences without ground truth after frame 0 (GOT-10k's test split) are listed as unscored: they enter
no figure (scoring the initial box alone would give every tracker a perfect score).
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from siamstream.evaluation.got10k import Got10kScores
from siamstream.evaluation.metrics import SequenceMetrics

Curve = Literal["success", "precision", "norm_precision"]


class SequenceResult(BaseModel):
    """One sequence's row: scores in [0, 1], curves over the thresholds of `evaluation.metrics`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    frames: int = Field(description="Frames in the sequence.")
    scored_frames: int = Field(description="Frames with valid, visible ground truth, the ones OPE scores.")
    success_auc: float
    precision: float = Field(description="Fraction of scored frames with centre error <= 20 px.")
    norm_precision: float = Field(description="Fraction of scored frames with normalised error <= 0.2.")
    ao: float = Field(description="GOT-10k average overlap (frame 0 left out, boxes clipped to the image).")
    sr50: float = Field(description="GOT-10k success rate: fraction of its IoUs above 0.5.")
    sr75: float = Field(description="GOT-10k success rate: fraction of its IoUs above 0.75.")
    ao_frames: int = Field(description="IoUs behind the GOT-10k figures (frames after 0, times runs).")
    fps: float | None = Field(default=None, description="Frames tracked per second, when measured.")
    timed_frames: int = Field(
        default=0,
        description="Frames whose times `fps` is the mean speed of (the GOT-10k toolkit's, from saved "
        "per-frame times); 0 when `fps` is the frames over the whole run's time.",
    )
    attributes: list[str] = Field(default_factory=list, description="The sequence's attributes.")
    success_curve: list[float]
    precision_curve: list[float]
    norm_precision_curve: list[float]

    @classmethod
    def from_metrics(
        cls,
        name: str,
        frames: int,
        metrics: SequenceMetrics,
        got10k: Got10kScores,
        fps: float | None = None,
        timed_frames: int = 0,
        attributes: tuple[str, ...] = (),
    ) -> SequenceResult:
        return cls(
            name=name,
            frames=frames,
            scored_frames=metrics.frames,
            success_auc=metrics.success_auc,
            precision=metrics.precision,
            norm_precision=metrics.norm_precision,
            ao=got10k.ao,
            sr50=got10k.sr50,
            sr75=got10k.sr75,
            ao_frames=got10k.frames,
            fps=fps,
            timed_frames=timed_frames,
            attributes=list(attributes),
            success_curve=metrics.success_curve.tolist(),
            precision_curve=metrics.precision_curve.tolist(),
            norm_precision_curve=metrics.norm_precision_curve.tolist(),
        )


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


class EvaluationReport(BaseModel):
    """Results of one tracker: one row per scored sequence, in evaluation order, and the unscored ones."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tracker: str
    sequences: list[SequenceResult] = Field(default_factory=list)
    unscored: list[str] = Field(
        default_factory=list, description="Sequences tracked but without ground truth after frame 0."
    )

    @model_validator(mode="after")
    def _some_sequence(self) -> EvaluationReport:
        if not self.sequences and not self.unscored:
            raise ValueError("a report needs at least one sequence")
        return self

    @property
    def success_auc(self) -> float:
        return _mean([row.success_auc for row in self.sequences])

    @property
    def precision(self) -> float:
        return _mean([row.precision for row in self.sequences])

    @property
    def norm_precision(self) -> float:
        return _mean([row.norm_precision for row in self.sequences])

    def _pooled(self, field: str) -> float:
        weights = [row.ao_frames for row in self.sequences]
        if not sum(weights):
            return float("nan")
        return float(np.average([getattr(row, field) for row in self.sequences], weights=weights))

    @property
    def ao(self) -> float:
        """GOT-10k AO over the pooled frames of all sequences."""
        return self._pooled("ao")

    @property
    def sr50(self) -> float:
        return self._pooled("sr50")

    @property
    def sr75(self) -> float:
        return self._pooled("sr75")

    @property
    def fps(self) -> float | None:
        """Total frames over total tracking time, or for speeds from saved per-frame times the GOT-10k
        toolkit's mean speed of all timed frames pooled; None unless every sequence has a measured speed."""
        rows = self.sequences
        speeds = [(row, row.fps) for row in rows if row.fps is not None]
        if not rows or len(speeds) < len(rows):
            return None
        if all(row.timed_frames for row in rows):
            return sum(fps * row.timed_frames for row, fps in speeds) / sum(row.timed_frames for row in rows)
        seconds = sum(row.frames / fps for row, fps in speeds)
        return sum(row.frames for row in rows) / seconds

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

    def by_attribute(self) -> dict[str, EvaluationReport]:
        """One report per attribute, over the scored sequences that have it; attributes in name order."""
        tags = sorted({tag for row in self.sequences for tag in row.attributes})
        return {
            tag: EvaluationReport(
                tracker=self.tracker, sequences=[r for r in self.sequences if tag in r.attributes]
            )
            for tag in tags
        }

    def overall(self) -> dict[str, Any]:
        """The overall figures; None for a figure that no sequence defines."""
        figures = {
            "success_auc": self.success_auc,
            "precision": self.precision,
            "norm_precision": self.norm_precision,
            "ao": self.ao,
            "sr50": self.sr50,
            "sr75": self.sr75,
            "fps": self.fps,
        }
        return {"sequences": len(self.sequences)} | {
            key: _finite_or_none(value) for key, value in figures.items()
        }

    def to_json(self) -> str:
        """The report as JSON: tracker, overall figures, figures per attribute, unscored sequences, and
        every row with its curves."""
        document = {
            "tracker": self.tracker,
            "overall": self.overall(),
            "attributes": {tag: report.overall() for tag, report in self.by_attribute().items()},
            "unscored": self.unscored,
            "sequences": [row.model_dump() for row in self.sequences],
        }
        return json.dumps(document, indent=2)

    def to_text(self) -> str:
        """A fixed-width table: one line per sequence, the overall figures, one line per attribute, and
        the unscored sequences."""
        attributes = self.by_attribute()
        names = ["Overall", *(row.name for row in self.sequences), *attributes]
        width = max(len(name) for name in names)
        header = f"{'Sequence':<{width}}  Frames  Success  Prec@20  NPrec@0.2     AO  SR0.50  SR0.75      FPS"
        rule = "-" * len(header)

        def line(name: str, frames: int, scores: SequenceResult | EvaluationReport) -> str:
            speed = "-" if scores.fps is None else f"{scores.fps:.1f}"
            return (
                f"{name:<{width}}  {frames:>6}  {scores.success_auc:>7.3f}  {scores.precision:>7.3f}  "
                f"{scores.norm_precision:>9.3f}  {scores.ao:>5.3f}  {scores.sr50:>6.3f}  "
                f"{scores.sr75:>6.3f}  {speed:>7}"
            )

        def frames(report: EvaluationReport) -> int:
            return sum(row.frames for row in report.sequences)

        lines = [f"Tracker: {self.tracker}", header, rule]
        lines += [line(row.name, row.frames, row) for row in self.sequences]
        if self.sequences:
            lines += [rule, line("Overall", frames(self), self)]
        if attributes:
            lines += [rule, *(line(tag, frames(report), report) for tag, report in attributes.items())]
        if self.unscored:
            lines += [f"Unscored (no ground truth after frame 0): {len(self.unscored)} sequences"]
        return "\n".join(lines)
